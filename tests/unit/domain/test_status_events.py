"""Which status events go on the bus: by default only those a rule of the stack routes (notifications, ops, the
books platforms' external refunds) and every event of a refund that came from a platform with a write-back rule;
PublishAllStatusEvents puts every status event on the bus. The audit trail records every change either way.
Also: INVOICE_UPDATED and COMPLETED are one write with both audit entries."""

from __future__ import annotations

from typing import Any

import pytest

from local.cfn import Stack
from refundflow.audit import verify_chain
from refundflow.domain.books import update_invoice
from refundflow.domain.intake import accept_refund_request
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.recorder import write_back_platforms
from refundflow.domain.validation import validate_refund
from refundflow.errors import ConcurrentModification, IllegalTransition
from refundflow.events import EVENT_FOR_STATUS, ROUTED_STATUS_EVENTS, is_consumed
from refundflow.ports import StatusMove, VerifiedSource
from refundflow.status import RefundStatus
from tests.support.domain import completed
from tests.support.fakes import TEST_AUDIT_KEYS, TIMING, World, refund_request_body

S = RefundStatus
EVERY_STRAIGHT_EVENT = [
    "RefundRequested",
    "RefundValidated",
    "RefundApproved",
    "RefundSubmitted",
    "RefundIssued",
    "InvoiceUpdated",
    "RefundCompleted",
]


def test_by_default_a_straight_through_refund_publishes_only_the_event_a_rule_routes(paid: World) -> None:
    env = paid
    env.publish_all_status_events = False
    # WHEN a refund from the generic intake goes straight through
    refund_id = completed(env, "RMA-default")
    # THEN only RefundIssued (the customer's message, the books' external refunds) went on the bus
    assert env.publisher.for_refund(refund_id) == ["RefundIssued"]
    # AND the audit trail still holds every status change, chained and intact
    refund = env.repository.get(refund_id)
    timeline = env.repository.timeline(refund_id)
    changed_to = [entry.to_status for entry in timeline if entry.type.startswith("StatusChanged:")]
    assert changed_to == [S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED, S.REFUNDED, S.INVOICE_UPDATED, S.COMPLETED]
    assert verify_chain(timeline, expected_head=refund.audit_head, keys=TEST_AUDIT_KEYS).intact


def test_publish_all_status_events_puts_every_status_event_on_the_bus(paid: World) -> None:
    env = paid
    env.publish_all_status_events = True
    refund_id = completed(env, "RMA-all")
    assert env.publisher.for_refund(refund_id) == EVERY_STRAIGHT_EVENT


def test_every_event_of_a_refund_from_a_help_desk_goes_on_the_bus_for_its_write_back(paid: World) -> None:
    env = paid
    env.publish_all_status_events = False
    # GIVEN a refund that came from a Zendesk ticket (its write-back rule takes every event of its refunds)
    accepted = accept_refund_request(
        refund_request_body(reference="ZD-1"),
        source=VerifiedSource("returns-portal"),
        delivery_id="dlv-zd",
        recorder=env.recorder,
        starter=env.starter,
        timing=TIMING,
        channel="zendesk",
    )
    refund_id = accepted.refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    # THEN every status event was published, as with PublishAllStatusEvents
    assert env.publisher.for_refund(refund_id) == EVERY_STRAIGHT_EVENT


def test_events_that_are_not_status_changes_are_always_published() -> None:
    for detail_type in ("ReturnUpdated", "RefundAcquirerReference", "RefundApprovalEscalated"):
        assert is_consumed(detail_type, "refund-requests", write_back_platforms=frozenset(), publish_all=False)
    assert not is_consumed("RefundCompleted", "refund-requests", write_back_platforms=frozenset(), publish_all=False)
    assert is_consumed("RefundCompleted", "zendesk", write_back_platforms=frozenset({"zendesk"}), publish_all=False)


def _bus_rules() -> list[dict[str, Any]]:
    rules = Stack.from_template("refundflow").of_type("AWS::Events::Rule").values()
    return [rule["Properties"]["EventPattern"] for rule in rules if "EventPattern" in rule["Properties"]]


def test_every_rule_on_the_bus_gets_the_status_events_it_matches() -> None:
    """A rule naming a status event needs it in ROUTED_STATUS_EVENTS; a rule naming none must take the events of
    refunds from its own platform (a write-back), which are all published."""
    status_events = set(EVENT_FOR_STATUS.values())
    rules = _bus_rules()
    assert rules
    write_backs = 0
    for pattern in rules:
        named = set(pattern.get("detail-type", []))
        if named:
            assert named & status_events <= ROUTED_STATUS_EVENTS, pattern
            continue
        platforms = set(pattern["detail"]["source"]["platform"])
        assert platforms <= write_back_platforms(), pattern
        write_backs += 1
    assert write_backs == len(write_back_platforms())


def test_invoice_updated_and_completed_are_one_write_with_both_audit_entries(paid: World) -> None:
    env = paid
    refund_id = env.reserved(refund_request_body(reference="RMA-one"))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    refunded = env.repository.get(refund_id)
    assert refunded.status is S.REFUNDED
    changes = env.repository.transition_through(
        refunded,
        [
            StatusMove(S.INVOICE_UPDATED, "books:xero", {"number": "CN-1"}),
            StatusMove(S.COMPLETED, "step:UpdateInvoice"),
        ],
    )
    stored = env.repository.get(refund_id)
    assert stored.status is S.COMPLETED
    assert stored.version == refunded.version + 1  # one write of the state
    assert [change.entry.seq for change in changes] == [refunded.audit_seq + 1, refunded.audit_seq + 2]
    timeline = env.repository.timeline(refund_id)
    assert [(entry.from_status, entry.to_status) for entry in timeline[-2:]] == [
        (S.REFUNDED, S.INVOICE_UPDATED),
        (S.INVOICE_UPDATED, S.COMPLETED),
    ]
    assert timeline[-2].details == {"number": "CN-1"}
    assert verify_chain(timeline, expected_head=stored.audit_head, keys=TEST_AUDIT_KEYS).intact


def test_a_write_of_several_moves_is_all_or_nothing(paid: World) -> None:
    env = paid
    refund_id = env.reserved(refund_request_body(reference="RMA-none"))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    refunded = env.repository.get(refund_id)
    entries = len(env.repository.timeline(refund_id))
    # A move the state model forbids (COMPLETED -> INVOICE_UPDATED) writes nothing, not even the first move
    with pytest.raises(IllegalTransition):
        env.repository.transition_through(
            refunded, [StatusMove(S.COMPLETED, "step:UpdateInvoice"), StatusMove(S.INVOICE_UPDATED, "books:xero")]
        )
    # A refund changed since it was read writes nothing either
    env.repository.record(refunded, "Note", actor="test")
    with pytest.raises(ConcurrentModification):
        env.repository.transition_through(
            refunded, [StatusMove(S.INVOICE_UPDATED, "books:xero"), StatusMove(S.COMPLETED, "step:UpdateInvoice")]
        )
    assert env.repository.get(refund_id).status is S.REFUNDED
    assert len(env.repository.timeline(refund_id)) == entries + 1  # the note only
