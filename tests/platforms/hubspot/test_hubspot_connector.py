"""HubSpotTickets against the HubSpot simulator over real HTTP: reading a ticket with its contact, writing a refund
event back (stage, status property, note), finding a note whose answer was lost, errors in our vocabulary, the
default mapping applied to the tickets an agent moves, and every request valid for HubSpot's own OpenAPI documents
(when they are at hand: contract.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import requests
import yaml

from local.simulators.base import FaultRule
from local.simulators.hubspot import DEFAULT_ACCESS_TOKEN, LOCAL_STAGE_IDS, HubSpotSimulator
from refundflow.connectors.http import HttpClient
from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.errors import (
    CardDataRefused,
    ConfigurationError,
    InvalidRequest,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.platforms.hubspot.connector import (
    DAILY_RETRY_SECONDS,
    HubSpotSettings,
    HubSpotTickets,
    _build,
    parse_stage_ids,
)
from refundflow.ports import TicketNews, TicketUpdate
from refundflow.status import RefundStatus
from tests.platforms.hubspot import contract
from tests.support.servers import serve_wsgi

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")
MAPPING = load_mapping(
    yaml.safe_load(resources.files("refundflow.platforms.hubspot").joinpath("mapping.yaml").read_text()),
    source="hubspot default",
)
REQUEST = {
    "payment_provider": "stripe",
    "payment_id": "pi_3PqTicket00000001",
    "reason": "damaged",
    "amount": "49.90",
    "currency": "EUR",
    "customer_email": "grace@example.com",
    "customer_name": "Grace Hopper",
    "approver_role": "team_lead",
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[HubSpotSimulator, str]]:
    simulator = HubSpotSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(served: tuple[HubSpotSimulator, str]) -> HubSpotSimulator:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    simulator.max_per_window, simulator.retry_after = 150, True
    return simulator


def tickets_for(url: str, token: str = DEFAULT_ACCESS_TOKEN, **options: Any) -> HubSpotTickets:
    http = HttpClient(
        platform="hubspot",
        base_url=url,
        default_headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=(5.0, 30.0),
    )
    return HubSpotTickets(http, stage_ids=parse_stage_ids(LOCAL_STAGE_IDS), **options)


@pytest.fixture
def tickets(served: tuple[HubSpotSimulator, str], simulator: HubSpotSimulator) -> HubSpotTickets:
    return tickets_for(served[1])


def update(label: str = "issued", marker: str = "refundflow:evt-1") -> TicketUpdate:
    return TicketUpdate(
        marker=marker,
        refund_id="rf_0123456789abcdef0123456789abcdef",
        event="RefundIssued",
        status=RefundStatus.REFUNDED,
        label=label,
        text=f"Refund issued: 49.90 EUR. [{marker}]",
    )


def news(ticket_id: str) -> TicketNews:
    return TicketNews(platform="hubspot", event_id=f"{ticket_id}:e", ticket_id=ticket_id, payload={})


# ---------------------------------------------------------------- read


def test_a_ticket_is_read_with_its_refund_properties_and_its_contact(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    # GIVEN a ticket seeded as a support agent fills it in
    ticket_id = simulator.seed_ticket(REQUEST)
    # WHEN the connector reads it
    ticket = tickets.read_ticket(ticket_id)
    # THEN its properties and its contact are there, as the mapping reads them
    assert ticket["id"] == ticket_id
    assert ticket["properties"]["refund_payment_id"] == "pi_3PqTicket00000001"
    assert ticket["properties"]["hubspot_team_id"] == "9100001"
    assert ticket["requester"] == {
        "id": ticket["associations"]["contacts"]["results"][0]["id"],
        "email": "grace@example.com",
        "name": "Grace Hopper",
        "locale": "en",
    }


def test_a_ticket_nobody_has_is_not_found(tickets: HubSpotTickets) -> None:
    with pytest.raises(NotFound):
        tickets.read_ticket("999999999")


@pytest.mark.parametrize("ticket_id", ["٤٧١١", "1/../2", "", "12 3"])
def test_a_ticket_id_that_is_not_plain_digits_never_reaches_hubspot(
    simulator: HubSpotSimulator, tickets: HubSpotTickets, ticket_id: str
) -> None:
    with pytest.raises(RejectedError) as refused:
        tickets.read_ticket(ticket_id)
    assert refused.value.code == "invalid_ticket_id"
    assert simulator.requests_seen == []


def test_a_refused_token_is_a_final_refusal_in_hubspots_words(
    served: tuple[HubSpotSimulator, str], simulator: HubSpotSimulator
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    with pytest.raises(RejectedError) as refused:
        tickets_for(served[1], token="pat-eu1-revoked").read_ticket(ticket_id)
    assert refused.value.code == "provider_authentication_failed"
    assert "INVALID_AUTHENTICATION" in str(refused.value)


# ---------------------------------------------------------------- write and has_update


def test_a_write_back_sets_the_stage_and_status_and_adds_the_note(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    # GIVEN an approved ticket
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(ticket_id, "approve")
    # WHEN an issued refund is written back
    tickets.write_back(ticket_id, update("issued"))
    # THEN the agent sees the note, the refund status and the stage the settings name for "issued"
    view = simulator.ticket_view(ticket_id)
    assert view["notes"] == ["Refund issued: 49.90 EUR. [refundflow:evt-1]"]
    assert view["labels"] == ["issued"]
    assert view["ticket"]["properties"]["hs_pipeline_stage"] == "90000004"


def test_a_label_without_a_stage_leaves_the_stage_alone(simulator: HubSpotSimulator, tickets: HubSpotTickets) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(ticket_id, "approve")
    tickets.write_back(ticket_id, update("processing"))
    view = simulator.ticket_view(ticket_id)
    assert (view["labels"], view["ticket"]["properties"]["hs_pipeline_stage"]) == (["processing"], "90000002")


def test_the_marker_is_found_only_once_the_note_is_written(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    assert tickets.has_update(ticket_id, "refundflow:evt-1") is False
    tickets.write_back(ticket_id, update(marker="refundflow:evt-1"))
    assert tickets.has_update(ticket_id, "refundflow:evt-1") is True
    assert tickets.has_update(ticket_id, "refundflow:evt-2") is False


def test_the_marker_is_found_beyond_the_first_page_and_batch(
    served: tuple[HubSpotSimulator, str], simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    # GIVEN a ticket with 620 notes, ours the last (two pages of associations, seven batch reads)
    ticket_id = simulator.seed_ticket(REQUEST)
    writer = tickets_for(served[1], status_property=None)
    simulator.max_per_window = 10_000
    for index in range(619):
        writer.write_back(ticket_id, update("processing", marker=f"refundflow:other-{index}"))
    writer.write_back(ticket_id, update(marker="refundflow:last"))
    simulator.requests_seen.clear()
    # WHEN the marker is looked for / THEN it is found, having followed HubSpot's paging
    assert tickets.has_update(ticket_id, "refundflow:last") is True
    pages = [seen for seen in simulator.requests_seen if seen["method"] == "GET"]
    assert len(pages) == 2
    assert "after=500" in pages[1]["query"]


def test_a_write_to_a_ticket_nobody_has_is_not_found(tickets: HubSpotTickets) -> None:
    # the port's contract: the update is dropped and ops hear of it
    with pytest.raises(NotFound):
        tickets.write_back("999999999", update())


def test_a_status_property_the_account_lacks_is_refused_in_hubspots_words(
    served: tuple[HubSpotSimulator, str], simulator: HubSpotSimulator
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    with pytest.raises(RejectedError) as refused:
        tickets_for(served[1], status_property="refund_state").write_back(ticket_id, update())
    assert refused.value.code == "hubspot_validation_error"
    assert "refund_state" in str(refused.value)
    assert "does not exist" in str(refused.value)


# ---------------------------------------------------------------- rate limits and faults


def test_the_ten_second_window_is_transient_with_hubspots_retry_after(
    served: tuple[HubSpotSimulator, str], simulator: HubSpotSimulator
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.max_per_window = 2
    tickets = tickets_for(served[1])
    tickets.read_ticket(ticket_id)  # two calls: the ticket and its contact
    with pytest.raises(TransientError) as limited:
        tickets.read_ticket(ticket_id)
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after_seconds is not None
    assert 1 <= limited.value.retry_after_seconds <= 10


def test_without_retry_after_the_window_in_hubspots_interval_header_is_waited(
    served: tuple[HubSpotSimulator, str], simulator: HubSpotSimulator
) -> None:
    simulator.retry_after = False
    simulator.add_fault(FaultRule(method="GET", path=r"^/crm/v3/objects/tickets/", status=429))
    with pytest.raises(TransientError) as limited:
        tickets_for(served[1]).read_ticket("1")
    assert limited.value.retry_after_seconds == 10.0


def test_the_daily_allowance_is_retried_much_later(served: tuple[HubSpotSimulator, str]) -> None:
    _, url = served
    daily = {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT"}
    fault = {"method": "GET", "path": "tickets", "status": 429, "body": {**daily, "policyName": "DAILY"}}
    requests.post(f"{url}/_control/faults", json=fault, timeout=5).raise_for_status()
    with pytest.raises(TransientError) as limited:
        tickets_for(url).read_ticket("1")
    assert limited.value.retry_after_seconds == DAILY_RETRY_SECONDS


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("read_ticket", lambda tickets, ticket_id: tickets.read_ticket(ticket_id)),
        ("write_back", lambda tickets, ticket_id: tickets.write_back(ticket_id, update())),
        ("has_update", lambda tickets, ticket_id: tickets.has_update(ticket_id, "refundflow:x")),
    ],
)
def test_an_injected_rate_limit_is_transient_with_retry_after(
    simulator: HubSpotSimulator, tickets: HubSpotTickets, operation: str, call: Any
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.inject_fault(operation, "transient")
    with pytest.raises(TransientError) as limited:
        call(tickets, ticket_id)
    assert limited.value.retry_after_seconds == 10


def test_a_server_error_on_a_read_is_transient_and_on_a_write_an_unknown_outcome(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.inject_fault("read_ticket", "server_error")
    with pytest.raises(TransientError):
        tickets.read_ticket(ticket_id)
    simulator.inject_fault("write_back", "server_error")
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(ticket_id, update())


def test_a_write_whose_answer_was_lost_is_written_whole_on_the_retry(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    # GIVEN the stage update took effect but its answer came too late (the note was never sent)
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.add_fault(FaultRule(method="PATCH", path="tickets", status=None, when="after", lose_answer=True))
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(ticket_id, update())
    # WHEN the kit looks for the marker (no note yet) and writes again
    assert tickets.has_update(ticket_id, "refundflow:evt-1") is False
    tickets.write_back(ticket_id, update())
    # THEN the ticket has the status once and the note once
    view = simulator.ticket_view(ticket_id)
    assert (view["labels"], len(view["notes"])) == (["issued"], 1)


def test_a_note_whose_answer_was_lost_is_found_by_its_marker(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.inject_fault("write_back", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(ticket_id, update())
    assert tickets.has_update(ticket_id, "refundflow:evt-1") is True


# ---------------------------------------------------------------- the default mapping on the simulator's tickets


def test_an_approval_in_the_pipeline_asks_for_the_refund_with_the_team_leads_claim(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(ticket_id, "approve")
    intent, request = ticket_request(news(ticket_id), tickets.read_ticket(ticket_id), MAPPING)
    assert intent is Intent.APPROVED
    assert (request.amount.minor_units, request.amount.currency) == (4990, "EUR")
    assert (request.payment.provider.value, request.payment.payment_id) == ("stripe", "pi_3PqTicket00000001")
    assert (request.approved_by.id, request.approved_by.role) == ("301", "team_lead")
    assert (request.customer.email, request.source.ticket_id) == ("grace@example.com", ticket_id)


def test_a_request_stage_asks_without_an_approvers_claim(simulator: HubSpotSimulator, tickets: HubSpotTickets) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(ticket_id, "request")
    intent, request = ticket_request(news(ticket_id), tickets.read_ticket(ticket_id), MAPPING)
    assert (intent, request.approved_by) == (Intent.REQUESTED, None)


def test_the_cancelled_stage_withdraws(simulator: HubSpotSimulator, tickets: HubSpotTickets) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(ticket_id, "approve")
    simulator.agent_action(ticket_id, "withdraw")
    intent, _ = ticket_request(news(ticket_id), tickets.read_ticket(ticket_id), MAPPING)
    assert intent is Intent.CANCELLED


def test_a_new_ticket_asks_nothing(simulator: HubSpotSimulator, tickets: HubSpotTickets) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    assert ticket_request(news(ticket_id), tickets.read_ticket(ticket_id), MAPPING) == (None, None)


@pytest.mark.parametrize("role", [None, "agent"])
def test_an_approval_by_no_team_lead_claims_no_more_than_the_team_maps(
    simulator: HubSpotSimulator, tickets: HubSpotTickets, role: str | None
) -> None:
    ticket_id = simulator.seed_ticket({**REQUEST, "approver_role": role})
    simulator.agent_action(ticket_id, "approve")
    _, request = ticket_request(news(ticket_id), tickets.read_ticket(ticket_id), MAPPING)
    assert (request.approved_by.role if request.approved_by else None) == role


def test_a_card_number_typed_into_a_mapped_property_is_refused_and_never_echoed(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    card = "4111 1111 1111 1111"
    ticket_id = simulator.seed_ticket({**REQUEST, "order_id": card})
    simulator.agent_action(ticket_id, "approve")
    with pytest.raises(CardDataRefused) as refused:
        ticket_request(news(ticket_id), tickets.read_ticket(ticket_id), MAPPING)
    assert card not in str(refused.value)
    assert [error["field"] for error in refused.value.errors] == ["order.order_id"]


@pytest.mark.parametrize(("amount", "currency"), [("49.905", "EUR"), ("10.5", "JPY"), ("abc", "EUR")])
def test_an_amount_the_currency_cannot_carry_is_refused(
    simulator: HubSpotSimulator, tickets: HubSpotTickets, amount: str, currency: str
) -> None:
    ticket_id = simulator.seed_ticket({**REQUEST, "amount": amount, "currency": currency})
    simulator.agent_action(ticket_id, "approve")
    with pytest.raises(InvalidRequest):
        ticket_request(news(ticket_id), tickets.read_ticket(ticket_id), MAPPING)


def test_the_approvers_team_is_read_from_the_ticket_never_from_the_delivery(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    ticket_id = simulator.seed_ticket({**REQUEST, "approver_role": None})
    simulator.agent_action(ticket_id, "approve")
    forged = TicketNews(
        platform="hubspot",
        event_id="x",
        ticket_id=ticket_id,
        payload={"hs_object_id": ticket_id, "hubspot_team_id": "9100001", "properties": {"hubspot_team_id": "9100001"}},
    )
    _, request = ticket_request(forged, tickets.read_ticket(ticket_id), MAPPING)
    assert request.approved_by is None


# ---------------------------------------------------------------- settings and the official documents


def test_the_connector_is_built_from_the_private_app_token_and_settings() -> None:
    config = HubSpotSettings.model_validate(
        {"HUBSPOT_API_BASE": "https://api.hubapi.com", "HUBSPOT_STAGE_IDS": "completed=4, failed=90000005"}
    )
    built = _build(config, "rf/hubspot", {"access_token": "pat-eu1-x"})
    assert built.http.default_headers["Authorization"] == "Bearer pat-eu1-x"
    assert built.stage_ids == {"completed": "4", "failed": "90000005"}
    with pytest.raises(ConfigurationError):
        _build(config, "rf/hubspot", {"token": "pat-eu1-x"})
    with pytest.raises(ConfigurationError):
        parse_stage_ids("completed:4")
    with pytest.raises(ConfigurationError):
        _build(config.model_copy(update={"ticket_properties": "Refund Amount"}), "rf/hubspot", {"access_token": "x"})


def test_every_request_the_connector_sends_is_valid_for_hubspots_documents(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    # GIVEN the four documents at hand (skips otherwise: they may not be copied here, see contract.py)
    contract.specs_dir()
    ticket_id = simulator.seed_ticket(REQUEST)
    # WHEN the connector reads, writes back and looks for a marker
    tickets.read_ticket(ticket_id)
    tickets.write_back(ticket_id, update())
    tickets.has_update(ticket_id, "refundflow:evt-1")
    # THEN every request it sent is valid for HubSpot's document of its path
    seen = list(simulator.requests_seen)
    assert {(request["method"], contract.spec_for(request["path"])) for request in seen} == {
        ("GET", "tickets-v3.json"),
        ("GET", "contacts-v3.json"),
        ("PATCH", "tickets-v3.json"),
        ("POST", "notes-v3.json"),
        ("GET", "associations-v4.json"),
    }
    for request in seen:
        contract.validate_request(request)
    note = next(json.loads(request["body"]) for request in seen if request["method"] == "POST")
    assert note["associations"][0]["types"] == [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]


def test_a_contact_gone_since_its_association_leaves_the_ticket_without_requester(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    simulator.contacts.clear()
    ticket = tickets.read_ticket(ticket_id)
    assert ticket["requester"] is None
    assert ticket["properties"]["refund_payment_id"] == "pi_3PqTicket00000001"


def test_missing_scopes_are_a_permission_refusal(simulator: HubSpotSimulator, tickets: HubSpotTickets) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    body = {
        "status": "error",
        "message": "This app hasn't been granted all required scopes",
        "category": "MISSING_SCOPES",
    }
    simulator.add_fault(FaultRule(method="POST", path="notes", status=403, body=body))
    with pytest.raises(RejectedError) as refused:
        tickets.write_back(ticket_id, update())
    assert refused.value.code == "provider_permission_denied"
    assert "MISSING_SCOPES" in str(refused.value)


def test_a_gateway_page_that_is_not_json_is_still_a_transient_read(
    simulator: HubSpotSimulator, tickets: HubSpotTickets
) -> None:
    simulator.add_fault(FaultRule(method="GET", path="tickets", status=502, body="<html>Bad gateway</html>"))
    with pytest.raises(TransientError):
        tickets.read_ticket("1")


def test_without_a_status_property_or_stage_only_the_note_is_written(
    served: tuple[HubSpotSimulator, str], simulator: HubSpotSimulator
) -> None:
    ticket_id = simulator.seed_ticket(REQUEST)
    tickets_for(served[1], status_property=None).write_back(ticket_id, update("processing"))
    assert [seen["method"] for seen in simulator.requests_seen] == ["POST"]
    assert simulator.ticket_view(ticket_id)["labels"] == []
