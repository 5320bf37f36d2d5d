"""The return's lifecycle (issue 12): steps reported by the returns system, in any order and more than once, also
before the refund request; what the refund shows of them and the facts the policy decides on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from refundflow.domain.intake import GENERIC_SOURCE, RETURN_UPDATED, source_refund_id
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.returns import ReturnUpdateAccepted, accept_return_update
from refundflow.domain.views import refund_view
from refundflow.errors import Forbidden, IdempotencyConflict
from refundflow.models import Refund, ReturnStatus, ReturnUpdateBody
from refundflow.money import Money
from refundflow.policy import build_policy_input
from refundflow.ports import VerifiedSource
from tests.support.fakes import World, refund_request_body

PORTAL = VerifiedSource("returns-portal")
REFERENCE = "RMA-2001"


def update(status: str, at: str, *, reference: str = REFERENCE, **extra: Any) -> ReturnUpdateBody:
    return ReturnUpdateBody.model_validate(
        {"source": {"system": "returns-portal", "reference": reference}, "status": status, "occurred_at": at, **extra}
    )


def returning(status: str) -> dict[str, Any]:
    """A request's own ``return`` (the field is a Python keyword)."""
    return {"return": {"status": status}}


def report(env: World, body: ReturnUpdateBody, delivery_id: str = "ret-1") -> ReturnUpdateAccepted:
    return accept_return_update(body, source=PORTAL, delivery_id=delivery_id, recorder=env.recorder)


def return_entries(env: World, refund_id: str) -> list[dict[str, Any]]:
    return [entry.details for entry in env.repository.timeline(refund_id) if entry.type == RETURN_UPDATED]


def test_a_late_in_transit_is_kept_but_never_winds_the_status_back(env: World) -> None:
    refund_id = env.accept(refund_request_body(reference=REFERENCE)).refund.refund_id
    assert refund_id == source_refund_id(GENERIC_SOURCE, "returns-portal", REFERENCE)
    # GIVEN a return received WHEN the in_transit step (earlier) arrives after it
    received = report(env, update("received", "2026-12-04T10:00:00+00:00"), "ret-1")
    late = report(env, update("in_transit", "2026-12-02T08:00:00+01:00", tracking_reference="3SXYZ"), "ret-2")
    # THEN the status stays received, and the history holds both, oldest first
    assert (received.lifecycle.status, late.lifecycle.status) == (ReturnStatus.RECEIVED, ReturnStatus.RECEIVED)
    assert (received.duplicate, late.duplicate) == (False, False)
    view = refund_view(refund_id, repository=env.repository)
    assert view.return_lifecycle is not None
    assert view.return_lifecycle.status is ReturnStatus.RECEIVED
    assert [step.status for step in view.return_lifecycle.steps] == [ReturnStatus.IN_TRANSIT, ReturnStatus.RECEIVED]
    assert view.return_lifecycle.steps[0].tracking_reference == "3SXYZ"
    assert view.return_lifecycle.steps[0].source == "returns-portal"
    # AND the view serialises it as "return", and the audit trail has one entry per step
    assert view.model_dump(mode="json")["return"]["status"] == "received"
    assert [entry["status"] for entry in return_entries(env, refund_id)] == ["received", "in_transit"]
    assert view.audit.intact


def test_the_same_step_delivered_twice_is_written_once_and_other_content_is_a_conflict(env: World) -> None:
    refund_id = env.accept(refund_request_body(reference=REFERENCE)).refund.refund_id
    step = update("received", "2026-12-04T10:00:00Z")
    first = report(env, step, "ret-1")
    # WHEN the same step comes again (another delivery id, the same moment in another offset)
    again = report(env, update("received", "2026-12-04T11:00:00+01:00"), "ret-2")
    # THEN it is a duplicate: one item, one audit entry
    assert (first.duplicate, again.duplicate) == (False, True)
    assert len(env.repository.return_steps(refund_id)) == 1
    assert len(return_entries(env, refund_id)) == 1
    # AND the same status at the same moment with another tracking reference is refused
    with pytest.raises(IdempotencyConflict):
        report(env, update("received", "2026-12-04T10:00:00Z", tracking_reference="OTHER"), "ret-3")
    assert len(env.repository.return_steps(refund_id)) == 1


def test_a_step_before_the_request_is_kept_for_the_refund_it_names(env: World) -> None:
    # GIVEN the returns system is faster than the shop: the label exists before the refund request
    early = report(env, update("label_created", "2026-12-01T09:00:00Z"))
    assert early.refund is None
    assert early.lifecycle.status is ReturnStatus.LABEL_CREATED
    # WHEN the request comes, with its own return
    body = refund_request_body(reference=REFERENCE, **returning("requested"))
    refund = env.accept(body).refund
    # THEN the refund has both steps, its own first, and its trail records the early one
    assert refund.refund_id == early.refund_id
    view = refund_view(refund.refund_id, repository=env.repository)
    assert view.return_lifecycle is not None
    assert view.return_lifecycle.status is ReturnStatus.LABEL_CREATED
    assert {step.status for step in view.return_lifecycle.steps} == {ReturnStatus.REQUESTED, ReturnStatus.LABEL_CREATED}
    entries = return_entries(env, refund.refund_id)
    assert [(entry["status"], entry["before_request"]) for entry in entries] == [("label_created", True)]
    assert view.audit.intact


def test_only_the_source_that_signed_may_report_for_its_requests(env: World) -> None:
    body = update("received", "2026-12-04T10:00:00Z")
    with pytest.raises(Forbidden) as refused:
        accept_return_update(body, source=VerifiedSource("helpdesk"), delivery_id="ret-1", recorder=env.recorder)
    assert refused.value.code == "source_mismatch"
    assert env.repository.return_steps(source_refund_id(GENERIC_SOURCE, "returns-portal", REFERENCE)) == []


def test_lines_only_with_inspected_and_not_required_is_no_step() -> None:
    lines = [{"sku": "SKU-1", "quantity": 1, "outcome": "resellable"}]
    assert update("inspected", "2026-12-04T10:00:00Z", lines=lines).lines is not None
    with pytest.raises(ValidationError):
        update("received", "2026-12-04T10:00:00Z", lines=lines)
    with pytest.raises(ValidationError):
        update("not_required", "2026-12-04T10:00:00Z")
    with pytest.raises(ValidationError):
        update("received", "2026-12-04T10:00:00")  # no offset


def test_the_policy_sees_received_inspected_and_resellable(env: World) -> None:
    refund = env.accept(refund_request_body(reference=REFERENCE, **returning("in_transit"))).refund

    def facts() -> Any:
        steps = env.repository.return_steps(refund.refund_id)
        return build_policy_input(
            refund,
            remaining=Money.of(10_000, "EUR"),
            customer_history=[],
            refunded_today=Money.of(0, "EUR"),
            now=datetime(2026, 12, 6, 12, tzinfo=UTC),
            return_steps=steps,
        ).return_info

    assert (facts().status, facts().received, facts().inspected) == ("in_transit", False, False)
    report(env, update("received", "2026-12-04T10:00:00Z"), "ret-1")
    assert (facts().status, facts().received, facts().days_since_received) == ("received", True, 2)
    damaged = [
        {"sku": "SKU-1", "quantity": 1, "outcome": "resellable"},
        {"sku": "SKU-2", "quantity": 1, "outcome": "damaged"},
    ]
    report(env, update("inspected", "2026-12-05T10:00:00Z", lines=damaged), "ret-2")
    assert (facts().inspected, facts().resellable) == (True, False)
    # A later inspection replaces the earlier one; a late in_transit changes nothing
    report(env, update("inspected", "2026-12-05T15:00:00Z", lines=damaged[:1]), "ret-3")
    report(env, update("in_transit", "2026-12-03T10:00:00Z"), "ret-4")
    assert (facts().status, facts().received, facts().resellable) == ("inspected", True, True)


def test_a_step_that_races_the_workflow_is_written_on_the_fresh_refund(env: World) -> None:
    refund_id = env.accept(refund_request_body(reference=REFERENCE)).refund.refund_id

    class Racing(RefundRecorder):
        """The workflow writes the refund between the step's read and its write, once."""

        raced = False

        def note(self, refund: Refund, entry_type: str, **kwargs: Any) -> Refund:
            if not self.raced:
                self.raced = True
                env.recorder.note(env.repository.get(refund.refund_id), "PaymentLookedUp", actor="tests:workflow")
            return super().note(refund, entry_type, **kwargs)

    racing = Racing(env.repository, env.publisher)
    accepted = accept_return_update(
        update("received", "2026-12-04T10:00:00Z"), source=PORTAL, delivery_id="ret-1", recorder=racing
    )
    # THEN the step is recorded once, after the workflow's entry, and the chain holds
    assert (racing.raced, accepted.duplicate) == (True, False)
    types = [entry.type for entry in env.repository.timeline(refund_id)]
    assert types[-2:] == ["PaymentLookedUp", RETURN_UPDATED]
    assert len(env.repository.return_steps(refund_id)) == 1
    assert refund_view(refund_id, repository=env.repository).audit.intact


@pytest.mark.parametrize("request_first", [True, False], ids=["request-before-the-put", "request-after-the-put"])
def test_a_step_racing_the_request_gets_exactly_one_audit_entry(
    env: World, monkeypatch: pytest.MonkeyPatch, request_first: bool
) -> None:
    # GIVEN the request arrives while the returns system's early step is being stored (just before or after it)
    put = env.repository.put_return_step

    def racing_put(refund_id: str, step: Any) -> bool:
        if request_first:  # intake looks for early steps before this one is stored
            env.accept(refund_request_body(reference=REFERENCE))
            return put(refund_id, step)
        stored = put(refund_id, step)  # intake finds this one and records it itself
        env.accept(refund_request_body(reference=REFERENCE))
        return stored

    monkeypatch.setattr(env.repository, "put_return_step", racing_put)
    accepted = report(env, update("label_created", "2026-12-01T09:00:00Z"))
    # THEN the refund's trail has the step once, whoever recorded it
    assert accepted.refund is not None
    entries = return_entries(env, accepted.refund_id)
    assert [(entry["status"], entry["before_request"]) for entry in entries] == [("label_created", True)]


def return_events(env: World, refund_id: str) -> list[Any]:
    return [
        event for event in env.publisher.events if event.refund_id == refund_id and event.detail_type == RETURN_UPDATED
    ]


def test_each_step_recorded_publishes_one_return_updated_event_and_a_redelivery_the_same_one(env: World) -> None:
    refund_id = env.accept(refund_request_body(reference=REFERENCE)).refund.refund_id
    # GIVEN two steps, one of them delivered twice
    report(env, update("in_transit", "2026-12-02T08:00:00Z", tracking_reference="3SXYZ"), "ret-1")
    report(env, update("received", "2026-12-04T10:00:00Z"), "ret-2")
    report(env, update("received", "2026-12-04T10:00:00Z"), "ret-3")
    events = return_events(env, refund_id)
    # THEN each step has its event: the refund, its status, the step's status and source, no contact details
    assert [(event.details["status"], event.details["source"]) for event in events] == [
        ("in_transit", "returns-portal"),
        ("received", "returns-portal"),
        ("received", "returns-portal"),
    ]
    assert {event.refund_id for event in events} == {refund_id}
    assert all(event.status.value == "RECEIVED" for event in events)
    # AND the redelivery published the second step's event again, under its event_id (consumers deduplicate)
    assert events[1].event_id == events[2].event_id
    assert len({event.event_id for event in events}) == 2
    assert [entry.seq for entry in env.repository.timeline(refund_id) if entry.type == RETURN_UPDATED] == [
        int(event.event_id.rsplit("#", 1)[1]) for event in events[:2]
    ]
    assert not any("jane.doe" in event.model_dump_json() for event in events)


def test_a_step_before_the_request_is_published_when_the_refund_is_created(env: World) -> None:
    report(env, update("label_created", "2026-12-01T09:00:00Z"), "ret-1")
    assert env.publisher.events == []
    refund_id = env.accept(refund_request_body(reference=REFERENCE)).refund.refund_id
    events = return_events(env, refund_id)
    assert [(event.details["status"], event.details["before_request"]) for event in events] == [("label_created", True)]
