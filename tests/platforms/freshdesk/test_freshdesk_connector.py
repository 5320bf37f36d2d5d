"""FreshdeskTickets against the Freshdesk simulator over real HTTP: the ticket read with its requester, the
write-back (status field, then a private note), the marker found across conversation pages, and the error set."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from local.simulators.base import FaultRule
from local.simulators.freshdesk import DEFAULT_API_KEY, FreshdeskSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import ConfigurationError, NotFound, OutcomeUnknownError, RejectedError, TransientError
from refundflow.money import Money
from refundflow.platforms.freshdesk.connector import FreshdeskSettings, FreshdeskTickets, _build
from refundflow.ports import TicketUpdate
from refundflow.status import RefundStatus
from tests.support.servers import serve_wsgi

TICKET = r"^/api/v2/tickets/[0-9]+$"
NOTES = r"^/api/v2/tickets/[0-9]+/notes$"

# The request bodies as the Freshdesk API reference documents them (no official OpenAPI file exists): every write
# the connector sends must be one of these.
UPDATE_TICKET = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "custom_fields": {
            "type": "object",
            "propertyNames": {"pattern": "^cf_[a-z0-9_]+$"},
            "additionalProperties": {"type": ["string", "null"]},
        },
        "status": {"enum": [2, 3, 4, 5]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
CREATE_NOTE = {
    "type": "object",
    "required": ["body"],
    "additionalProperties": False,
    "properties": {
        "body": {"type": "string", "minLength": 1},
        "private": {"type": "boolean"},
        "incoming": {"type": "boolean"},
        "notify_emails": {"type": "array", "items": {"type": "string"}},
        "user_id": {"type": "integer"},
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FreshdeskSimulator, str]]:
    simulator = FreshdeskSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(server: tuple[FreshdeskSimulator, str]) -> Iterator[FreshdeskSimulator]:
    simulator = server[0]
    simulator.reset_state()
    simulator.faults.clear()
    simulator.requests_seen.clear()
    simulator.rate_limit_per_minute = 200
    yield simulator
    # THEN (every test) each write sent was a documented request body
    for seen in simulator.requests_seen:
        if seen["method"] == "PUT":
            jsonschema.validate(json.loads(seen["body"]), UPDATE_TICKET)
        if seen["method"] == "POST":
            jsonschema.validate(json.loads(seen["body"]), CREATE_NOTE)


def make_tickets(
    url: str, api_key: str = DEFAULT_API_KEY, read_timeout: float = 1.0, **options: Any
) -> FreshdeskTickets:
    credentials = base64.b64encode(f"{api_key}:X".encode()).decode()
    http = HttpClient(
        platform="freshdesk",
        base_url=url,
        default_headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
        timeout=(2.0, read_timeout),
    )
    return FreshdeskTickets(http, **options)


@pytest.fixture
def tickets(server: tuple[FreshdeskSimulator, str], simulator: FreshdeskSimulator) -> FreshdeskTickets:
    return make_tickets(server[1])


def seed(simulator: FreshdeskSimulator, **request: Any) -> str:
    return simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": "pi_3PqFreshdesk0000001",
            "amount": "49.90",
            "currency": "EUR",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
            "approver_role": "team_lead",
            **request,
        }
    )


def update(marker: str = "refundflow:evt-1", label: str = "issued", text: str | None = None) -> TicketUpdate:
    return TicketUpdate(
        marker=marker,
        refund_id="rf_1",
        event="RefundIssued",
        status=RefundStatus.REFUNDED,
        label=label,
        text=text or f"Refund issued: 49.90 EUR. Refund rf_1, status REFUNDED. [{marker}]",
        amount=Money.of(4_990, "EUR"),
    )


# ---------------------------------------------------------------- read


def test_a_ticket_is_read_with_its_requester_and_basic_auth(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    # GIVEN a ticket from Ada, in the team leads' group
    ticket_id = seed(simulator)
    # WHEN it is read
    ticket = tickets.read_ticket(ticket_id)
    # THEN it is Freshdesk's ticket with its requester included and its custom fields by API name
    assert str(ticket["id"]) == ticket_id
    assert ticket["requester"]["email"] == "ada@example.com"
    assert ticket["custom_fields"]["cf_payment_id"] == "pi_3PqFreshdesk0000001"
    assert ticket["status"] == 2
    assert ticket["group_id"] == 48000000001
    assert ticket["responder_id"] == 48000000101
    (sent,) = simulator.requests_seen
    assert (sent["path"], sent["query"]) == (f"/api/v2/tickets/{ticket_id}", "include=requester")
    expected = base64.b64encode(f"{DEFAULT_API_KEY}:X".encode()).decode()
    assert sent["headers"]["Authorization"] == f"Basic {expected}"


def test_an_unknown_ticket_is_not_found(tickets: FreshdeskTickets, simulator: FreshdeskSimulator) -> None:
    with pytest.raises(NotFound):
        tickets.read_ticket("999999999")


@pytest.mark.parametrize("ticket_id", ["٤٧١١", "47/../1", "1?include=stats", ""])
def test_a_ticket_id_that_is_not_plain_digits_never_reaches_freshdesk(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator, ticket_id: str
) -> None:
    with pytest.raises(RejectedError) as refused:
        tickets.read_ticket(ticket_id)
    assert refused.value.code == "invalid_ticket_id"
    assert simulator.requests_seen == []


# ---------------------------------------------------------------- write-back


def test_a_write_back_sets_the_status_field_then_adds_a_private_note(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    # WHEN a refund event is written back, with text a browser would read as markup
    tickets.write_back(ticket_id, update(text="Refund issued: <b>49.90 EUR</b> & more. [refundflow:evt-1]"))
    # THEN the field is set first, then one private note carrying the text (escaped) and the marker
    put, post = simulator.requests_seen
    assert (put["method"], json.loads(put["body"])) == ("PUT", {"custom_fields": {"cf_refund_status": "issued"}})
    assert post["path"] == f"/api/v2/tickets/{ticket_id}/notes"
    note = json.loads(post["body"])
    assert note["private"] is True
    assert note["body"] == "<p>Refund issued: &lt;b&gt;49.90 EUR&lt;/b&gt; &amp; more. [refundflow:evt-1]</p>"
    view = simulator.ticket_view(ticket_id)
    assert view["notes"] == ["Refund issued: <b>49.90 EUR</b> & more. [refundflow:evt-1]"]
    assert (view["public"], view["labels"]) == ([], ["issued"])


def test_without_a_status_field_only_the_note_is_written(
    server: tuple[FreshdeskSimulator, str], simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    make_tickets(server[1], status_field=None).write_back(ticket_id, update())
    assert [seen["method"] for seen in simulator.requests_seen] == ["POST"]
    assert simulator.ticket_view(ticket_id)["labels"] == []


def test_a_status_field_the_account_does_not_have_is_refused_with_freshdesks_words(
    server: tuple[FreshdeskSimulator, str], simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    with pytest.raises(RejectedError) as refused:
        make_tickets(server[1], status_field="cf_refund_state").write_back(ticket_id, update())
    assert refused.value.code == "freshdesk_invalid_field"
    assert "cf_refund_state" in refused.value.message
    assert "Unexpected/invalid field" in refused.value.message
    assert simulator.ticket_view(ticket_id)["notes"] == []


def test_a_label_that_is_not_one_of_the_dropdowns_choices_is_refused(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    with pytest.raises(RejectedError) as refused:
        tickets.write_back(ticket_id, update(label="refunded_twice"))
    assert refused.value.code == "freshdesk_invalid_value"
    assert "It should be one of these values" in refused.value.message


def test_a_write_to_a_ticket_that_is_gone_is_not_found(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    with pytest.raises(NotFound):
        tickets.write_back("999999999", update())


def test_a_status_write_whose_answer_is_lost_is_unknown_and_is_written_whole_again(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    # GIVEN Freshdesk sets the field but its answer comes after our read timeout
    ticket_id = seed(simulator)
    simulator.add_fault(FaultRule(method="PUT", path=TICKET, status=None, when="after", lose_answer=True))
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(ticket_id, update())
    # WHEN the kit looks for the marker THEN it is not there (the note was never sent), so the update is written again
    assert tickets.has_update(ticket_id, "refundflow:evt-1") is False
    tickets.write_back(ticket_id, update())
    view = simulator.ticket_view(ticket_id)
    assert (view["notes"], view["labels"]) == (
        ["Refund issued: 49.90 EUR. Refund rf_1, status REFUNDED. [refundflow:evt-1]"],
        ["issued"],
    )


def test_a_note_whose_answer_is_lost_is_found_by_its_marker(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    simulator.inject_fault("write_back", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(ticket_id, update())
    assert tickets.has_update(ticket_id, "refundflow:evt-1") is True
    assert tickets.has_update(ticket_id, "refundflow:evt-2") is False


def test_the_marker_is_found_on_a_later_page_of_conversations(
    server: tuple[FreshdeskSimulator, str], tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    # GIVEN 150 earlier notes on the ticket, then ours (Freshdesk lists conversations oldest first)
    ticket_id = seed(simulator)
    for number in range(150):
        make_tickets(server[1], status_field=None).write_back(ticket_id, update(f"refundflow:old-{number}"))
    tickets.write_back(ticket_id, update("refundflow:new"))
    simulator.requests_seen.clear()
    # WHEN the marker is looked for THEN it is found on the second page, reached through the Link header
    assert tickets.has_update(ticket_id, "refundflow:new") is True
    pages = [seen["query"] for seen in simulator.requests_seen]
    assert pages == ["per_page=100&page=1", "per_page=100&page=2"]


def test_a_next_link_to_another_host_is_never_followed(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    simulator.add_fault(
        FaultRule(
            method="GET",
            path=r"/conversations$",
            status=200,
            body=[],
            headers={"Link": '<https://evil.example.com/api/v2/tickets/1/conversations?page=2>; rel="next"'},
        )
    )
    assert tickets.has_update(ticket_id, "refundflow:evt-1") is False
    assert len(simulator.requests_seen) == 1


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("operation", ["read_ticket", "write_back", "has_update"])
def test_a_rate_limit_is_transient_with_freshdesks_retry_after(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator, operation: str
) -> None:
    ticket_id = seed(simulator)
    simulator.inject_fault(operation, "transient")
    calls: dict[str, Callable[[], object]] = {
        "read_ticket": lambda: tickets.read_ticket(ticket_id),
        "write_back": lambda: tickets.write_back(ticket_id, update()),
        "has_update": lambda: tickets.has_update(ticket_id, "refundflow:evt-1"),
    }
    with pytest.raises(TransientError) as limited:
        calls[operation]()
    assert (limited.value.code, limited.value.retry_after_seconds) == ("rate_limited", 2.0)
    assert simulator.ticket_view(ticket_id)["notes"] == []


def test_the_accounts_per_minute_limit_answers_429_with_the_seconds_to_wait(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    # GIVEN an account allowed 3 credits a minute (each read with its requester costs 2)
    ticket_id = seed(simulator)
    simulator.rate_limit_per_minute = 3
    tickets.read_ticket(ticket_id)
    # WHEN the next read would go over THEN it is transient, with Freshdesk's Retry-After (1 to 60 s)
    with pytest.raises(TransientError) as limited:
        tickets.read_ticket(ticket_id)
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after_seconds is not None
    assert 1 <= limited.value.retry_after_seconds <= 60


def test_a_server_error_is_transient_on_a_read_and_unknown_on_a_write(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    simulator.inject_fault("read_ticket", "server_error")
    with pytest.raises(TransientError):
        tickets.read_ticket(ticket_id)
    simulator.add_fault(FaultRule(method="POST", path=NOTES, status=502))
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(ticket_id, update())


def test_a_wrong_api_key_is_refused_as_credentials(
    server: tuple[FreshdeskSimulator, str], simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    with pytest.raises(RejectedError) as refused:
        make_tickets(server[1], api_key="not-the-key").read_ticket(ticket_id)
    assert refused.value.code == "provider_authentication_failed"
    assert "You have to be logged in" in refused.value.message


def test_an_agent_without_access_is_refused_with_permission_denied(
    tickets: FreshdeskTickets, simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    simulator.add_fault(
        FaultRule(
            method="GET",
            path=TICKET,
            status=403,
            body={"code": "access_denied", "message": "You are not authorized to perform this action."},
        )
    )
    with pytest.raises(RejectedError) as refused:
        tickets.read_ticket(ticket_id)
    assert refused.value.code == "provider_permission_denied"
    assert "You are not authorized" in refused.value.message


# ---------------------------------------------------------------- factory


def test_the_factory_builds_basic_auth_from_the_api_key_and_checks_its_settings(
    server: tuple[FreshdeskSimulator, str], simulator: FreshdeskSimulator
) -> None:
    ticket_id = seed(simulator)
    config = FreshdeskSettings.model_validate({"FRESHDESK_API_BASE": server[1]})
    built = _build(config, "refundflow/freshdesk", {"api_key": DEFAULT_API_KEY})
    assert built.status_field == "cf_refund_status"
    assert str(built.read_ticket(ticket_id)["id"]) == ticket_id
    with pytest.raises(ConfigurationError):
        _build(config, "refundflow/freshdesk", {"api_token": DEFAULT_API_KEY})
    bad = FreshdeskSettings.model_validate({"FRESHDESK_REFUND_STATUS_FIELD": "Refund status"})
    with pytest.raises(ConfigurationError):
        _build(bad, "refundflow/freshdesk", {"api_key": DEFAULT_API_KEY})
    unset = FreshdeskSettings.model_validate({"FRESHDESK_REFUND_STATUS_FIELD": ""})
    assert _build(unset, "refundflow/freshdesk", {"api_key": DEFAULT_API_KEY}).status_field is None
