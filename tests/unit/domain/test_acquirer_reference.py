"""The card network's reference for a paid refund (ARN) comes days after the money: it is stored once, told to the
timeline, the bus and the ticket, and never taken from news the provider does not confirm (issue 10)."""

from __future__ import annotations

from refundflow.domain.payments import ACQUIRER_REFERENCE
from refundflow.domain.tickets import ticket_update
from refundflow.ports import ProviderRefundStatus
from refundflow.status import RefundStatus
from tests.support.domain import completed
from tests.support.fakes import World, provider_event

ARN = "74123456789012345678901"


def test_a_reference_the_provider_confirms_is_stored_and_told_once(paid: World) -> None:
    env = paid
    # GIVEN a completed refund, whose ARN the network has now assigned at the provider
    refund_id = completed(env)
    truth = env.provider.only_refund()
    env.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": ARN})
    published = len(env.publisher.events)
    # WHEN the provider's news of it arrives, twice (a redelivery under another event id)
    env.deliver(provider_event(env.provider.only_refund(), event_id="evt_arn_1"))
    env.deliver(provider_event(env.provider.only_refund(), event_id="evt_arn_2"))
    # THEN the refund keeps its status and carries the reference; one audit entry, one bus event
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.acquirer_reference) == (RefundStatus.COMPLETED, ARN)
    entries = [entry for entry in env.repository.timeline(refund_id) if entry.type == ACQUIRER_REFERENCE]
    assert len(entries) == 1
    assert [event.detail_type for event in env.publisher.events[published:]] == [ACQUIRER_REFERENCE]
    # AND the ticket's note for that event names it
    update = ticket_update(env.publisher.events[-1], refund)
    assert ARN in update.text
    assert update.label == "completed"


def test_a_reference_only_the_delivery_claims_is_not_stored(paid: World) -> None:
    env = paid
    refund_id = completed(env)
    # GIVEN news claiming an ARN the provider does not report (the delivery is news, the provider the truth)
    claimed = env.provider.only_refund().model_copy(update={"acquirer_reference": ARN})
    env.deliver(provider_event(claimed, event_id="evt_forged_arn"))
    # THEN nothing is stored
    assert env.repository.get(refund_id).acquirer_reference is None


def test_a_failed_refund_never_gets_a_reference(paid: World) -> None:
    env = paid
    refund_id = completed(env)
    truth = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.FAILED)
    env.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": ARN})
    env.deliver(provider_event(env.provider.only_refund(), event_id="evt_failed"))
    assert env.repository.get(refund_id).acquirer_reference is None


OTHER_ARN = "74999999999999999999999"


def test_a_recorded_reference_is_never_replaced_by_a_later_one(paid: World) -> None:
    env = paid
    # GIVEN a completed refund whose ARN was recorded (and told to the customer)
    refund_id = completed(env)
    truth = env.provider.only_refund()
    env.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": ARN})
    env.deliver(provider_event(env.provider.only_refund(), event_id="evt_arn_first"))
    published = len(env.publisher.events)
    # WHEN the provider later shows another reference for the same refund
    env.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": OTHER_ARN})
    env.deliver(provider_event(env.provider.only_refund(), event_id="evt_arn_other"))
    # THEN the recorded one stays, and nothing more is written or published (no second follow-up)
    assert env.repository.get(refund_id).acquirer_reference == ARN
    entries = [entry for entry in env.repository.timeline(refund_id) if entry.type == ACQUIRER_REFERENCE]
    assert [entry.details["acquirer_reference"] for entry in entries] == [ARN]
    assert env.publisher.events[published:] == []
