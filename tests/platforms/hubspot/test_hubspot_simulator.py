"""The HubSpot simulator is as strict as HubSpot where refundflow could get it wrong (auth, unknown properties and
stages, note associations, the batch read's required fields, the ten-second window), and its workflow webhook is
signed as HubSpot signs it: intake's verifier (written apart from the simulator) accepts it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from local.simulators.hubspot import DEFAULT_ACCESS_TOKEN, HubSpotSimulator
from refundflow.errors import AuthenticationFailed
from refundflow.platforms.hubspot.inbound import HubSpotInbound
from tests.support.servers import DeliveryRecorder, serve_wsgi

REQUEST = {"payment_provider": "stripe", "payment_id": "pi_3PqTicket00000001", "approver_role": "team_lead"}
AUTH = {"Authorization": f"Bearer {DEFAULT_ACCESS_TOKEN}"}


@pytest.fixture
def served() -> Iterator[tuple[HubSpotSimulator, str]]:
    simulator = HubSpotSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def call(url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return requests.request(method, f"{url}{path}", json=body, headers=AUTH if headers is None else headers, timeout=5)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pat-unknown"}, {"Authorization": "Basic x"}])
def test_every_api_call_needs_the_private_app_token(served: tuple[HubSpotSimulator, str], headers: Any) -> None:
    simulator, url = served
    ticket_id = simulator.seed_ticket(REQUEST)
    answer = call(url, "GET", f"/crm/v3/objects/tickets/{ticket_id}", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION"
    assert set(answer.json()) >= {"status", "message", "correlationId", "category"}


def test_only_the_properties_asked_for_are_returned(served: tuple[HubSpotSimulator, str]) -> None:
    simulator, url = served
    ticket_id = simulator.seed_ticket(REQUEST)
    answer = call(url, "GET", f"/crm/v3/objects/tickets/{ticket_id}?properties=refund_payment_id,no_such_property")
    assert answer.json()["properties"] == {"refund_payment_id": "pi_3PqTicket00000001"}
    assert "associations" not in answer.json()


@pytest.mark.parametrize(
    ("properties", "error"),
    [
        ({"refund_state": "issued"}, "PROPERTY_DOESNT_EXIST"),
        ({"hs_lastmodifieddate": "1"}, "READ_ONLY_VALUE"),
        ({"hs_pipeline_stage": "77"}, "INVALID_OPTION"),
        ({"refund_status": "refunded"}, "INVALID_OPTION"),
        ({"refund_status": 3}, "INVALID_STRING"),
    ],
)
def test_a_ticket_update_hubspot_would_refuse_is_refused_whole(
    served: tuple[HubSpotSimulator, str], properties: dict[str, Any], error: str
) -> None:
    simulator, url = served
    ticket_id = simulator.seed_ticket(REQUEST)
    answer = call(url, "PATCH", f"/crm/v3/objects/tickets/{ticket_id}", {"properties": {"subject": "x", **properties}})
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert error in answer.json()["message"]
    assert simulator.ticket_view(ticket_id)["ticket"]["properties"]["subject"] == "Refund request"


@pytest.mark.parametrize(
    "note",
    [
        {"properties": {"hs_note_body": "x"}, "associations": []},
        {"properties": {"hs_timestamp": "yesterday", "hs_note_body": "x"}, "associations": []},
        {"properties": {"hs_timestamp": "1765022400000", "hs_note_body": "x" * 65_537}, "associations": []},
        {"properties": {"hs_timestamp": "1765022400000", "hs_note_colour": "x"}, "associations": []},
        {"properties": {"hs_timestamp": "1765022400000"}, "associations": [], "archived": False},
    ],
    ids=["no-timestamp", "bad-timestamp", "too-long", "unknown-property", "unknown-field"],
)
def test_a_note_hubspot_would_refuse_is_refused(served: tuple[HubSpotSimulator, str], note: dict[str, Any]) -> None:
    _, url = served
    answer = call(url, "POST", "/crm/v3/objects/notes", note)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("target", "types"),
    [
        ("ticket", [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]),
        ("ticket", [{"associationCategory": "USER_DEFINED", "associationTypeId": 228}]),
        ("999999999", [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]),
    ],
    ids=["note-to-contact-type", "user-defined", "unknown-ticket"],
)
def test_a_note_associated_other_than_note_to_ticket_228_is_refused(
    served: tuple[HubSpotSimulator, str], target: str, types: list[dict[str, Any]]
) -> None:
    simulator, url = served
    ticket_id = simulator.seed_ticket(REQUEST)
    association = {"to": {"id": ticket_id if target == "ticket" else target}, "types": types}
    note = {"properties": {"hs_timestamp": "1765022400000", "hs_note_body": "x"}, "associations": [association]}
    assert call(url, "POST", "/crm/v3/objects/notes", note).status_code == 400
    assert simulator.ticket_view(ticket_id)["notes"] == []


def test_the_batch_read_needs_the_fields_the_spec_requires(served: tuple[HubSpotSimulator, str]) -> None:
    _, url = served
    answer = call(url, "POST", "/crm/v3/objects/notes/batch/read", {"inputs": [], "properties": ["hs_note_body"]})
    assert answer.status_code == 400
    assert "propertiesWithHistory" in answer.json()["message"]
    too_many = {"inputs": [{"id": str(n)} for n in range(101)], "properties": [], "propertiesWithHistory": []}
    assert call(url, "POST", "/crm/v3/objects/notes/batch/read", too_many).status_code == 400


def test_the_ten_second_window_answers_hubspots_429(served: tuple[HubSpotSimulator, str]) -> None:
    simulator, url = served
    simulator.max_per_window = 1
    ticket_id = simulator.seed_ticket(REQUEST)
    assert call(url, "GET", f"/crm/v3/objects/tickets/{ticket_id}").status_code == 200
    limited = call(url, "GET", f"/crm/v3/objects/tickets/{ticket_id}")
    assert limited.status_code == 429
    assert (limited.json()["errorType"], limited.json()["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert limited.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert 1 <= int(limited.headers["Retry-After"]) <= 10


def test_an_unknown_ticket_is_hubspots_404(served: tuple[HubSpotSimulator, str]) -> None:
    _, url = served
    answer = call(url, "GET", "/crm/v3/objects/tickets/123")
    assert (answer.status_code, answer.json()["category"]) == (404, "OBJECT_NOT_FOUND")


def test_the_workflow_webhook_is_signed_so_that_intakes_verifier_accepts_it(
    served: tuple[HubSpotSimulator, str],
) -> None:
    # GIVEN the workflow's webhook pointed at a recording endpoint
    simulator, _ = served
    recorder = DeliveryRecorder()
    with serve_wsgi(recorder) as endpoint:
        simulator.send_webhooks_to(f"{endpoint}/webhooks/hubspot")
        ticket_id = simulator.seed_ticket(REQUEST)
        # WHEN an agent moves the ticket to the approved stage
        simulator.agent_action(ticket_id, "approve")
        recorder.wait_until(lambda deliveries: len(deliveries) == 1)
    headers, raw = recorder.deliveries[0]
    # THEN the delivery carries the ticket's record id and stage, and verifies with the simulator's local secrets
    assert json.loads(raw)["hs_object_id"] == ticket_id
    assert json.loads(raw)["hs_pipeline_stage"] == "90000002"
    verification = simulator.local_secrets()["verification"]
    assert verification["webhook_urls"] == [f"{endpoint}/webhooks/hubspot"]
    news = HubSpotInbound().verify(headers, raw, verification).tickets
    assert [item.ticket_id for item in news] == [ticket_id]
    # AND it does not verify for another URL (the signature covers it)
    with pytest.raises(AuthenticationFailed, match="does not match"):
        HubSpotInbound().verify(headers, raw, {**verification, "webhook_urls": ["https://elsewhere.example/hook"]})


def test_each_enrolment_sends_a_new_body_so_a_second_approval_is_new_news(served: tuple[HubSpotSimulator, str]) -> None:
    simulator, _ = served
    recorder = DeliveryRecorder()
    with serve_wsgi(recorder) as endpoint:
        simulator.send_webhooks_to(f"{endpoint}/webhooks/hubspot")
        ticket_id = simulator.seed_ticket(REQUEST)
        for intent in ("approve", "withdraw", "approve"):
            simulator.agent_action(ticket_id, intent)
        recorder.wait_until(lambda deliveries: len(deliveries) == 3)
    now = datetime.now(UTC)
    events = [
        HubSpotInbound(now=lambda: now).verify(headers, raw, simulator.local_secrets()["verification"]).tickets[0]
        for headers, raw in recorder.deliveries
    ]
    assert len({event.event_id for event in events}) == 3


def test_the_control_routes_seed_act_and_show(served: tuple[HubSpotSimulator, str]) -> None:
    _, url = served
    ticket_id = requests.post(f"{url}/_control/tickets", json=REQUEST, timeout=5).json()["id"]
    shown = requests.post(f"{url}/_control/tickets/{ticket_id}/agent-action", json={"intent": "request"}, timeout=5)
    assert shown.json()["ticket"]["properties"]["hs_pipeline_stage"] == "90000001"
    assert requests.get(f"{url}/_control/tickets/404404/view", timeout=5).status_code == 404
    assert requests.post(f"{url}/_control/tickets", json={"payment_id": "x"}, timeout=5).status_code == 400


def test_an_unknown_ticket_or_intent_is_refused_by_agent_action(served: tuple[HubSpotSimulator, str]) -> None:
    simulator, _ = served
    with pytest.raises(KeyError):
        simulator.agent_action("404404", "approve")
    with pytest.raises(ValueError, match="intent"):
        simulator.agent_action(simulator.seed_ticket(REQUEST), "escalate")
