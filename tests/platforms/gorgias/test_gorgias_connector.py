"""Gorgias's connector against its simulator: the ticket read with what the call lacks (fields, customer, the
order and its payment), the write-back (tags, then the internal note with its marker), the marker found again,
and errors in the small set (429 with Retry-after, 404, 5xx, credentials refused)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.simulators.base import FaultRule
from refundflow.errors import ConfigurationError, NotFound, OutcomeUnknownError, RejectedError, TransientError
from refundflow.money import Money
from refundflow.platforms.gorgias.connector import GorgiasSettings, _build
from refundflow.ports import TicketUpdate
from refundflow.status import RefundStatus
from tests.platforms.gorgias.conftest import Served

PAYMENT = "ch_3PqGorgias0000001"


def seed(served: Served, **request: Any) -> str:
    return served.simulator.seed_ticket({"payment_provider": "stripe", "payment_id": PAYMENT, **request})


def update(label: str = "issued", event: str = "ev-1") -> TicketUpdate:
    return TicketUpdate(
        marker=f"refundflow:{event}",
        refund_id="rf_01JGORGIAS0000000000000000",
        event="RefundIssued",
        status=RefundStatus.REFUNDED,
        label=label,
        text=f"Refund issued: 49.90 EUR. Refund rf_01JGORGIAS0000000000000000. [refundflow:{event}]",
        amount=Money.of(4990, "EUR"),
        provider_refund_id="re_1",
    )


def sent(served: Served, method: str, suffix: str) -> list[Any]:
    return [
        json.loads(seen["body"]) if seen["body"] else None
        for seen in served.simulator.requests_seen
        if seen["method"] == method and seen["path"].endswith(suffix)
    ]


# ---------------------------------------------------------------- read


def test_read_ticket_exposes_the_shopify_order_and_its_stripe_charge(served: Served) -> None:
    # GIVEN a ticket whose customer's Shopify order was paid through the merchant's Stripe gateway
    ticket_id = seed(served, order_id="#1001", amount="49.90", currency="EUR", approver_role="team_lead")
    # WHEN the connector reads it
    ticket = served.connector().read_ticket(ticket_id)
    # THEN the ticket comes with its fields, its full customer, and the order it names with its payment
    assert ticket["id"] == int(ticket_id)
    assert ticket["fields"]["5000"] == "#1001"
    assert ticket["fields"]["5001"] == "49.90"
    assert ticket["customer"]["integrations"]  # read from GET /api/customers/{id}, not the ticket's summary
    assert ticket["order"]["platform"] == "shopify"
    assert ticket["order"]["name"] == "#1001"
    assert ticket["order"]["payment"] == {"provider": "stripe", "payment_id": PAYMENT}
    assert [seen["path"] for seen in served.simulator.requests_seen] == [
        f"/api/tickets/{ticket_id}",
        f"/api/tickets/{ticket_id}/custom-fields",
        f"/api/customers/{ticket['customer_id']}",
    ]


def test_a_stripe_only_merchants_charge_is_the_tickets_payment_with_no_order_platform(served: Served) -> None:
    ticket_id = seed(served, stripe_only=True, payment_id="pi_3PqGorgias0000002")
    order = served.connector().read_ticket(ticket_id)["order"]
    assert order["platform"] is None
    assert order["payment"] == {"provider": "stripe", "payment_id": "pi_3PqGorgias0000002"}


def test_a_customer_with_several_orders_and_no_order_named_gives_no_order(served: Served) -> None:
    # GIVEN a customer with three orders and a ticket whose order field is empty
    ticket_id = seed(served, orders=2)
    served.simulator.field_values[int(ticket_id)].pop(5000)
    # WHEN it is read, THEN no order is guessed (whose money goes back is never a guess)
    ticket = served.connector().read_ticket(ticket_id)
    assert len(ticket["orders"]) == 3
    assert ticket["order"] is None


def test_a_shopify_payments_order_carries_no_payment_refundflow_can_refund(served: Served) -> None:
    ticket_id = seed(served, payment_provider="paypal", payment_id="8AB12345CD6789012")
    ticket = served.connector().read_ticket(ticket_id)
    assert ticket["order"]["platform"] == "shopify"
    assert ticket["order"]["payment"] is None
    assert (ticket["fields"]["5004"], ticket["fields"]["5005"]) == ("paypal", "8AB12345CD6789012")


def test_reading_an_unknown_ticket_is_not_found(served: Served) -> None:
    with pytest.raises(NotFound):
        served.connector().read_ticket("999999")


@pytest.mark.parametrize("ticket_id", ["12a", "../customers/1", "٤٧"])
def test_a_ticket_id_that_is_not_plain_digits_never_reaches_a_path(served: Served, ticket_id: str) -> None:
    with pytest.raises(RejectedError) as refused:
        served.connector().read_ticket(ticket_id)
    assert refused.value.code == "invalid_ticket_id"
    assert served.simulator.requests_seen == []


def test_a_rate_limited_read_is_transient_with_gorgias_retry_after(served: Served) -> None:
    ticket_id = seed(served)
    served.simulator.inject_fault("read_ticket", "transient")
    with pytest.raises(TransientError) as limited:
        served.connector().read_ticket(ticket_id)
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after_seconds == 2.0


def test_the_leaky_bucket_refuses_the_41st_call_in_a_burst_with_the_wait_it_needs(served: Served) -> None:
    # GIVEN 40 calls at one instant (the simulator's clock does not move)
    ticket_id = seed(served)
    tickets = served.connector()
    for _ in range(40):
        tickets.has_update(ticket_id, "refundflow:none")
    # WHEN one more call comes, THEN Gorgias's 429 and Retry-after reach the caller as a transient error
    with pytest.raises(TransientError) as limited:
        tickets.has_update(ticket_id, "refundflow:none")
    assert limited.value.retry_after_seconds == 1.0
    # AND once the bucket has leaked, calls go through again
    served.clock.advance(1)
    assert tickets.has_update(ticket_id, "refundflow:none") is False


def test_a_server_error_on_a_read_is_transient(served: Served) -> None:
    ticket_id = seed(served)
    served.simulator.inject_fault("read_ticket", "server_error")
    with pytest.raises(TransientError):
        served.connector().read_ticket(ticket_id)


def test_credentials_gorgias_refuses_are_a_final_refusal(served: Served) -> None:
    ticket_id = seed(served)
    with pytest.raises(RejectedError) as refused:
        served.connector(api_key="not-the-key").read_ticket(ticket_id)
    assert refused.value.code == "provider_authentication_failed"
    assert "Unauthorized" in str(refused.value)


# ---------------------------------------------------------------- write


def test_write_back_sets_the_state_tag_then_writes_an_internal_note_with_its_marker(served: Served) -> None:
    # GIVEN a ticket that already carries the processing tag refundflow set earlier
    ticket_id = seed(served)
    tickets = served.connector()
    tickets.write_back(ticket_id, update("processing", "ev-0"))
    # WHEN the refund is issued
    tickets.write_back(ticket_id, update("issued", "ev-1"))
    # THEN the ticket shows one state tag and both notes, never sent to the customer
    view = served.simulator.ticket_view(ticket_id)
    assert view["labels"] == ["refund_issued"]
    assert len(view["notes"]) == 2
    assert "[refundflow:ev-1]" in view["notes"][1]
    assert view["public"] == []
    # AND the note is the documented internal note: channel, from_agent, a user as sender, the marker as external_id
    note = sent(served, "POST", "/messages")[-1]
    assert note["channel"] == "internal-note"
    assert note["from_agent"] is True
    assert note["via"] == "api"
    assert note["sender"] == {"email": served.simulator.email}
    assert note["external_id"] == "refundflow:ev-1"
    # AND the tags went first (a note found later means its tags were written)
    writes = [seen["method"] + " " + seen["path"].rsplit("/", 1)[1] for seen in served.simulator.requests_seen]
    assert writes[-3:] == ["POST tags", "DELETE tags", "POST messages"]


def test_has_update_finds_a_note_whose_answer_was_lost_and_nothing_else(served: Served) -> None:
    # GIVEN a note written, its answer lost after Gorgias stored it
    ticket_id = seed(served)
    tickets = served.connector()
    served.simulator.add_fault(
        FaultRule(method="POST", path=r"/messages$", status=None, when="after", lose_answer=True)
    )
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(ticket_id, update("issued", "ev-lost"))
    # WHEN the retry looks for it, THEN it is found by its marker, and another event's is not
    assert tickets.has_update(ticket_id, "refundflow:ev-lost") is True
    assert tickets.has_update(ticket_id, "refundflow:ev-other") is False


def test_has_update_follows_the_cursor_past_the_first_page(served: Served) -> None:
    ticket_id = seed(served)
    tickets = served.connector()
    with served.simulator.lock:
        for number in range(150):
            served.simulator._add_message(
                int(ticket_id), {"channel": "email", "from_agent": False, "body_text": f"message {number}"}
            )
    tickets.write_back(ticket_id, update("issued", "ev-late"))
    served.clock.advance(100)
    assert tickets.has_update(ticket_id, "refundflow:ev-late") is True
    assert any("cursor=100" in seen["query"] for seen in served.simulator.requests_seen)


def test_a_rate_limited_write_is_transient_with_retry_after_and_writes_nothing(served: Served) -> None:
    ticket_id = seed(served)
    served.simulator.inject_fault("write_back", "transient")
    with pytest.raises(TransientError) as limited:
        served.connector().write_back(ticket_id, update())
    assert limited.value.retry_after_seconds == 2.0
    assert served.simulator.ticket_view(ticket_id)["notes"] == []


def test_a_server_error_on_a_write_is_an_unknown_outcome(served: Served) -> None:
    ticket_id = seed(served)
    served.simulator.inject_fault("write_back", "server_error")
    with pytest.raises(OutcomeUnknownError):
        served.connector().write_back(ticket_id, update())


def test_writing_to_a_deleted_ticket_is_not_found(served: Served) -> None:
    with pytest.raises(NotFound):
        served.connector().write_back("999999", update())


def test_a_refused_note_carries_gorgias_words(served: Served) -> None:
    # GIVEN an API user that is not a user of the account (the note's sender)
    ticket_id = seed(served)
    tickets = served.connector()
    tickets.sender_email = "nobody@example.com"
    # WHEN the note is written, THEN Gorgias's refusal is final and says why
    with pytest.raises(RejectedError) as refused:
        tickets.write_back(ticket_id, update())
    assert refused.value.code == "gorgias_400"
    assert "sender" in str(refused.value)


# ---------------------------------------------------------------- configuration


def test_the_connector_authenticates_with_the_users_email_and_api_key(served: Served) -> None:
    ticket_id = seed(served)
    served.connector().read_ticket(ticket_id)
    expected = base64.b64encode(f"{served.simulator.email}:{served.simulator.api_key}".encode()).decode()
    assert served.simulator.requests_seen[0]["headers"]["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(
    ("secret", "order_field"),
    [
        ({"email": "x@example.com"}, ""),
        ({"email": "not-an-email", "api_key": "k"}, ""),
        ({"email": "x@y.z", "api_key": "k"}, "abc"),
    ],
)
def test_a_secret_or_setting_of_another_shape_is_a_configuration_error(
    secret: dict[str, str], order_field: str
) -> None:
    config = GorgiasSettings.model_validate({"GORGIAS_ORDER_FIELD_ID": order_field})
    with pytest.raises(ConfigurationError):
        _build(config, "refundflow/gorgias", secret)


def test_consecutive_events_of_one_state_write_its_tags_once(served: Served) -> None:
    # GIVEN a refund whose events keep the ticket in one state
    ticket_id = seed(served)
    tickets = served.connector()
    # WHEN three events are written, the last one a new state
    for label, event in (("processing", "ev-a"), ("processing", "ev-b"), ("issued", "ev-c")):
        tickets.write_back(ticket_id, update(label, event))
    # THEN each event has its note, and the tags were written only when the state changed
    assert len(served.simulator.ticket_view(ticket_id)["notes"]) == 3
    assert [body["names"] for body in sent(served, "POST", "/tags")] == [["refund_processing"], ["refund_issued"]]
    assert served.simulator.ticket_view(ticket_id)["labels"] == ["refund_issued"]
