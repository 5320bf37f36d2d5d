"""The Freshdesk simulator holds to what Freshdesk documents: Basic auth with an API key, the ticket fields an update
takes and nothing else, dropdown choices, Freshdesk's error shapes, a per-minute limit with its headers and
Retry-After, conversations paged with a Link header, and deliveries carrying the admin's secret header."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.base import SANDBOX_FAULTS
from local.simulators.freshdesk import DEFAULT_API_KEY, DEFAULT_WEBHOOK_SECRET, FreshdeskSimulator
from refundflow.platforms.freshdesk.inbound import FreshdeskInbound
from tests.support.servers import DeliveryRecorder, serve_wsgi


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_010.0  # 10 s into a minute

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{DEFAULT_API_KEY}:X".encode()).decode()}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FreshdeskSimulator, str]]:
    simulator = FreshdeskSimulator(now=CLOCK)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def sim(server: tuple[FreshdeskSimulator, str]) -> FreshdeskSimulator:
    server[0].reset_state()
    server[0].faults.clear()
    server[0].rate_limit_per_minute = 200
    CLOCK.now = 1_800_000_010.0
    return server[0]


@pytest.fixture
def url(server: tuple[FreshdeskSimulator, str], sim: FreshdeskSimulator) -> str:
    return server[1]


def seed(sim: FreshdeskSimulator, **request: Any) -> str:
    return sim.seed_ticket(
        {"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "team_lead", **request}
    )


def api(method: str, url: str, path: str, **options: Any) -> requests.Response:
    headers = {**AUTH, **options.pop("headers", {})}
    return requests.request(method, f"{url}{path}", headers=headers, timeout=5, **options)


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + base64.b64encode(b"wrong-key:X").decode(), "Bearer " + DEFAULT_API_KEY, "Basic !!!"],
)
def test_a_call_without_a_known_api_key_is_401_invalid_credentials(
    url: str, sim: FreshdeskSimulator, authorization: str | None
) -> None:
    ticket_id = seed(sim)
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.get(f"{url}/api/v2/tickets/{ticket_id}", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_credentials"


def test_every_answer_carries_the_rate_limit_headers_and_an_include_costs_a_credit(
    url: str, sim: FreshdeskSimulator
) -> None:
    ticket_id = seed(sim)
    plain = api("GET", url, f"/api/v2/tickets/{ticket_id}")
    included = api("GET", url, f"/api/v2/tickets/{ticket_id}?include=requester")
    assert (plain.headers["X-RateLimit-Total"], plain.headers["X-RateLimit-Used-CurrentRequest"]) == ("200", "1")
    assert (included.headers["X-RateLimit-Remaining"], included.headers["X-RateLimit-Used-CurrentRequest"]) == (
        "197",
        "2",
    )
    assert "requester" not in plain.json()
    assert included.json()["requester"]["id"] == plain.json()["requester_id"]


def test_past_the_minutes_limit_a_429_says_how_long_to_wait_and_the_next_minute_is_fresh(
    url: str, sim: FreshdeskSimulator
) -> None:
    ticket_id = seed(sim)
    sim.rate_limit_per_minute = 2
    assert api("GET", url, f"/api/v2/tickets/{ticket_id}").status_code == 200
    assert api("GET", url, f"/api/v2/tickets/{ticket_id}").status_code == 200
    limited = api("GET", url, f"/api/v2/tickets/{ticket_id}")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "50")
    CLOCK.now += 50
    assert api("GET", url, f"/api/v2/tickets/{ticket_id}").status_code == 200


def test_an_unknown_ticket_is_an_empty_404(url: str, sim: FreshdeskSimulator) -> None:
    answer = api("GET", url, "/api/v2/tickets/999999999999")
    assert (answer.status_code, answer.content) == (404, b"")


def test_an_include_freshdesk_does_not_offer_is_refused(url: str, sim: FreshdeskSimulator) -> None:
    answer = api("GET", url, f"/api/v2/tickets/{seed(sim)}?include=users")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "include"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"ticket": {"status": 4}}, "ticket", "invalid_field"),
        ({"custom_fields": {"cf_refund_stat": "issued"}}, "cf_refund_stat", "invalid_field"),
        ({"custom_fields": {"cf_refund_status": "Issued"}}, "cf_refund_status", "invalid_value"),
        ({"custom_fields": {"cf_refund_amount": 49.9}}, "cf_refund_amount", "datatype_mismatch"),
        ({"custom_fields": ["cf_refund_status"]}, "custom_fields", "datatype_mismatch"),
        ({"status": 6}, "status", "invalid_value"),
        ({"status": "4"}, "status", "invalid_value"),
        ({"group_id": 1}, "group_id", "invalid_value"),
        ({"responder_id": 1}, "responder_id", "invalid_value"),
    ],
)
def test_an_update_freshdesk_would_refuse_is_refused_and_changes_nothing(
    url: str, sim: FreshdeskSimulator, body: dict[str, Any], field: str, code: str
) -> None:
    ticket_id = seed(sim)
    before = sim.ticket_view(ticket_id)["ticket"]
    answer = api("PUT", url, f"/api/v2/tickets/{ticket_id}", json=body)
    assert answer.status_code == 400
    assert answer.json()["description"] == "Validation failed"
    assert {"field": field, "code": code} == {key: answer.json()["errors"][0][key] for key in ("field", "code")}
    assert sim.ticket_view(ticket_id)["ticket"] == before


def test_an_update_changes_only_what_it_sends(url: str, sim: FreshdeskSimulator) -> None:
    ticket_id = seed(sim, amount="12.00")
    CLOCK.now += 5
    answer = api(
        "PUT", url, f"/api/v2/tickets/{ticket_id}", json={"status": 4, "custom_fields": {"cf_refund_status": "issued"}}
    )
    assert answer.status_code == 200
    ticket = answer.json()
    assert (ticket["status"], ticket["custom_fields"]["cf_refund_status"]) == (4, "issued")
    assert ticket["custom_fields"]["cf_refund_amount"] == "12.00"
    assert ticket["updated_at"] > ticket["created_at"]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"private": True}, "body", "missing_field"),
        ({"body": ""}, "body", "missing_field"),
        ({"body": 5}, "body", "datatype_mismatch"),
        ({"body": "x", "private": "yes"}, "private", "datatype_mismatch"),
        ({"body": "x", "public": False}, "public", "invalid_field"),
    ],
)
def test_a_note_freshdesk_would_refuse_is_refused(
    url: str, sim: FreshdeskSimulator, body: dict[str, Any], field: str, code: str
) -> None:
    ticket_id = seed(sim)
    answer = api("POST", url, f"/api/v2/tickets/{ticket_id}/notes", json=body)
    assert answer.status_code == 400
    assert [(error["field"], error["code"]) for error in answer.json()["errors"]] == [(field, code)]
    assert sim.ticket_view(ticket_id)["notes"] == []


def test_a_note_is_private_unless_said_otherwise_and_its_text_is_its_body_without_markup(
    url: str, sim: FreshdeskSimulator
) -> None:
    ticket_id = seed(sim)
    private = api("POST", url, f"/api/v2/tickets/{ticket_id}/notes", json={"body": "<p>a &amp; b</p>"})
    public = api("POST", url, f"/api/v2/tickets/{ticket_id}/notes", json={"body": "<p>hello</p>", "private": False})
    assert (private.status_code, private.json()["private"], private.json()["body_text"]) == (201, True, "a & b")
    assert public.json()["private"] is False
    assert (sim.ticket_view(ticket_id)["notes"], sim.ticket_view(ticket_id)["public"]) == (["a & b"], ["hello"])


def test_a_write_that_is_not_json_is_refused(url: str, sim: FreshdeskSimulator) -> None:
    ticket_id = seed(sim)
    form = api("POST", url, f"/api/v2/tickets/{ticket_id}/notes", data={"body": "x"})
    broken = api(
        "POST",
        url,
        f"/api/v2/tickets/{ticket_id}/notes",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert (form.status_code, form.json()["code"]) == (415, "invalid_content_type")
    assert (broken.status_code, broken.json()["errors"][0]["code"]) == (400, "invalid_json")


def test_conversations_are_paged_oldest_first_with_a_link_to_the_next_page(url: str, sim: FreshdeskSimulator) -> None:
    ticket_id = seed(sim)
    for number in range(3):
        api("POST", url, f"/api/v2/tickets/{ticket_id}/notes", json={"body": f"note {number}"})
    first = api("GET", url, f"/api/v2/tickets/{ticket_id}/conversations?per_page=2")
    assert [item["body_text"] for item in first.json()] == ["note 0", "note 1"]
    assert first.links["next"]["url"] == f"{url}/api/v2/tickets/{ticket_id}/conversations?per_page=2&page=2"
    last = requests.get(first.links["next"]["url"], headers=AUTH, timeout=5)
    assert [item["body_text"] for item in last.json()] == ["note 2"]
    assert "Link" not in last.headers
    assert api("GET", url, f"/api/v2/tickets/{ticket_id}/conversations?per_page=101").status_code == 400


@pytest.mark.parametrize(
    ("operation", "fault"),
    [(op, fault) for op in ("read_ticket", "write_back", "has_update") for fault in SANDBOX_FAULTS[:2]],
)
def test_each_operation_can_be_faulted_once_in_freshdesks_shape(
    url: str, sim: FreshdeskSimulator, operation: str, fault: str
) -> None:
    ticket_id = seed(sim)
    method, path = {
        "read_ticket": ("GET", f"/api/v2/tickets/{ticket_id}"),
        "write_back": ("POST", f"/api/v2/tickets/{ticket_id}/notes"),
        "has_update": ("GET", f"/api/v2/tickets/{ticket_id}/conversations"),
    }[operation]
    body = {"body": "<p>note</p>", "private": True} if method == "POST" else None
    sim.inject_fault(operation, fault)
    faulted = api(method, url, path, json=body)
    assert faulted.status_code == (429 if fault == "transient" else 500)
    if fault == "transient":
        assert faulted.headers["Retry-After"] == "2"
    assert api(method, url, path, json=body).status_code == (201 if method == "POST" else 200)
    with pytest.raises(ValueError, match="unknown operation"):
        sim.inject_fault("create_refund", fault)


def test_an_agents_action_sends_the_webhook_with_the_admins_secret_header(sim: FreshdeskSimulator) -> None:
    recorder = DeliveryRecorder()
    with serve_wsgi(recorder) as endpoint:
        sim.send_webhooks_to(endpoint)
        try:
            ticket_id = seed(sim)
            # WHEN the agent approves
            sim.agent_action(ticket_id, "approve")
            recorder.wait_until(lambda deliveries: len(deliveries) == 1)
        finally:
            sim.webhooks.configure(None, None)
    (headers, raw) = recorder.deliveries[0]
    # THEN Freshdesk posts the rule's JSON with the custom header, which intake's verifier accepts
    assert headers["X-Refundflow-Secret"] == DEFAULT_WEBHOOK_SECRET
    assert json.loads(raw) == {"ticket_id": int(ticket_id), "refund_action": "Approved"}
    verified = FreshdeskInbound().verify(headers, raw, sim.local_secrets()["verification"])
    assert verified.tickets[0].ticket_id == ticket_id
    assert sim.ticket_view(ticket_id)["ticket"]["custom_fields"]["cf_refund_action"] == "Approved"


def test_the_sandbox_control_refuses_what_it_does_not_know(sim: FreshdeskSimulator) -> None:
    with pytest.raises(KeyError):
        sim.agent_action("424242", "approve")
    with pytest.raises(KeyError):
        sim.ticket_view("٤٢")
    ticket_id = seed(sim)
    with pytest.raises(ValueError, match="unknown intent"):
        sim.agent_action(ticket_id, "refund_everything")
    with pytest.raises(ValueError, match="payment_id are required"):
        sim.seed_ticket({"payment_provider": "stripe"})
    with pytest.raises(ValueError, match="unknown approver_role"):
        seed(sim, approver_role="owner")


def test_control_routes_seed_act_and_show_tickets(url: str, sim: FreshdeskSimulator) -> None:
    seeded = requests.post(
        f"{url}/_control/tickets", json={"payment_provider": "stripe", "payment_id": "pi_9"}, timeout=5
    )
    ticket_id = seeded.json()["id"]
    acted = requests.post(f"{url}/_control/tickets/{ticket_id}/agent-action", json={"intent": "request"}, timeout=5)
    assert acted.json()["ticket"]["custom_fields"]["cf_refund_action"] == "Requested"
    assert requests.get(f"{url}/_control/tickets/{ticket_id}/view", timeout=5).json()["labels"] == []
    assert requests.get(f"{url}/_control/tickets/1/view", timeout=5).status_code == 404
    assert (
        requests.post(f"{url}/_control/tickets/1/agent-action", json={"intent": "approve"}, timeout=5).status_code
        == 404
    )
    assert requests.post(f"{url}/_control/tickets", json={}, timeout=5).status_code == 400
    objects = requests.get(f"{url}/_control/objects", timeout=5).json()
    assert [ticket["id"] for ticket in objects["tickets"]] == [int(ticket_id)]


def test_a_reset_forgets_every_ticket(sim: FreshdeskSimulator) -> None:
    ticket_id = seed(sim)
    sim.reset_state()
    with pytest.raises(KeyError):
        sim.ticket_view(ticket_id)


def test_an_api_change_of_the_refund_action_fires_the_rule_and_a_write_back_fires_nothing(
    url: str, sim: FreshdeskSimulator
) -> None:
    recorder = DeliveryRecorder()
    with serve_wsgi(recorder) as endpoint:
        sim.send_webhooks_to(endpoint)
        try:
            ticket_id = seed(sim)
            # WHEN refundflow's write-back sets the status field and adds a note
            api("PUT", url, f"/api/v2/tickets/{ticket_id}", json={"custom_fields": {"cf_refund_status": "issued"}})
            api("POST", url, f"/api/v2/tickets/{ticket_id}/notes", json={"body": "<p>Refund issued</p>"})
            # AND an integration changes the Refund action through the API
            api("PUT", url, f"/api/v2/tickets/{ticket_id}", json={"custom_fields": {"cf_refund_action": "Cancelled"}})
            recorder.wait_until(lambda deliveries: len(deliveries) >= 1)
            sim.webhooks.wait_idle(timeout=10)
        finally:
            sim.webhooks.configure(None, None)
    # THEN only the change of the Refund action was delivered
    assert [json.loads(raw) for _, raw in recorder.deliveries] == [
        {"ticket_id": int(ticket_id), "refund_action": "Cancelled"}
    ]
