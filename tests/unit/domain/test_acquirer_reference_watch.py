"""The acquirer reference (ARN) no event announces: the schedule lists the completed refunds still without one, each
is read again at its platform and the ARN recorded once; past the cut-off, or where the platform gives none, the
reason is recorded once and the refund is not read again (issue 17, part 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from refundflow.domain.acquirer_references import (
    ACQUIRER_REFERENCE_UNAVAILABLE,
    REVERSAL,
    awaiting,
    read_acquirer_reference,
    reason_without_reference,
    watch,
)
from refundflow.domain.payments import ACQUIRER_REFERENCE
from refundflow.errors import TransientError
from refundflow.models import PaymentProvider
from refundflow.ports import AwaitedReference
from tests.support.domain import completed
from tests.support.fakes import World, refund_request_body

ARN = "74123456789012345678901"


def readable(env: World, how: str = "read") -> None:
    """The fake provider (named stripe) gives its refunds' ARN as ``how`` says (catalog acquirer_reference)."""
    env.provider._capabilities = env.provider.capabilities.model_copy(update={"acquirer_reference": how})


START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # the test repository's clock (a Saturday)


def later(days: int) -> datetime:
    return START + timedelta(days=days)


def now() -> datetime:
    return later(1)


def reads_of(env: World) -> int:
    return sum(1 for call in env.provider.calls if call.method == "get_refund")


def test_the_reference_is_recorded_once_when_the_platform_shows_it_and_the_refund_leaves_the_list(paid: World) -> None:
    env = paid
    readable(env)
    # GIVEN a completed refund whose ARN the platform has not assigned yet
    refund_id = completed(env)
    assert [awaited.refund_id for awaited in awaiting(env.repository, now=now)] == [refund_id]
    # WHEN it is read again: nothing yet, nothing recorded, still awaited
    read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=now)
    assert env.repository.get(refund_id).acquirer_reference is None
    assert [awaited.provider for awaited in awaiting(env.repository, now=now)] == ["stripe"]
    # WHEN the network assigns it at the platform, and the schedule reads it twice
    truth = env.provider.only_refund()
    env.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": ARN})
    published = len(env.publisher.events)
    for _ in range(2):
        read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=now)
    # THEN it is recorded once (one audit entry, one bus event: the customer's follow-up), the status unchanged
    refund = env.repository.get(refund_id)
    assert (refund.status.value, refund.acquirer_reference) == ("COMPLETED", ARN)
    assert [event.detail_type for event in env.publisher.events[published:]] == [ACQUIRER_REFERENCE]
    assert [e.type for e in env.repository.timeline(refund_id)].count(ACQUIRER_REFERENCE) == 1
    # AND the second read did not even ask the platform; the refund is no longer awaited
    assert reads_of(env) == 2
    assert awaiting(env.repository, now=now) == []


def test_past_the_cut_off_the_reference_is_recorded_as_not_available_once(paid: World) -> None:
    env = paid
    readable(env)
    refund_id = completed(env)
    # WHEN the schedule reads it three weeks later and the platform still has none
    read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=lambda: later(21))
    read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=lambda: later(22))
    # THEN the reason is recorded once, naming the platform and the cut-off, and the refund is not read again
    refund = env.repository.get(refund_id)
    assert (
        refund.acquirer_reference_unavailable
        == "Stripe showed no acquirer reference within 10 business days of the refund"
    )
    assert [e.type for e in env.repository.timeline(refund_id)].count(ACQUIRER_REFERENCE_UNAVAILABLE) == 1
    assert reads_of(env) == 1
    assert awaiting(env.repository, now=lambda: later(21)) == []


def test_within_the_cut_off_a_refund_without_its_reference_stays_awaited(paid: World) -> None:
    env = paid
    readable(env)
    refund_id = completed(env)
    read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=lambda: later(6))
    assert env.repository.get(refund_id).acquirer_reference_unavailable is None
    assert [awaited.refund_id for awaited in awaiting(env.repository, now=lambda: later(6))] == [refund_id]


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("none", "Stripe exposes no acquirer reference for a refund"),
        ("webhook", "Stripe gives the acquirer reference only in its refund webhook, and it carried none"),
    ],
)
def test_a_platform_that_cannot_be_read_for_it_gets_its_reason_without_a_call(
    paid: World, how: str, reason: str
) -> None:
    env = paid
    readable(env, how)
    refund_id = completed(env)
    read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=now)
    assert env.repository.get(refund_id).acquirer_reference_unavailable == reason
    assert reads_of(env) == 0


def test_a_reversal_has_no_reference(paid: World) -> None:
    env = paid
    readable(env)
    refund_id = completed(env)
    truth = env.provider.only_refund()
    env.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"method": "void"})
    read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=now)
    assert env.repository.get(refund_id).acquirer_reference_unavailable == REVERSAL


def test_a_refund_that_has_not_moved_money_is_not_read(paid: World) -> None:
    env = paid
    readable(env)
    refund_id = env.reserved(refund_request_body(reference="RMA-W", amount=1_000), "dlv-w")
    read_acquirer_reference(refund_id, recorder=env.recorder, provider=env.provider, now=now)
    assert reads_of(env) == 0
    assert env.repository.get(refund_id).acquirer_reference_unavailable is None


def test_one_refund_whose_read_fails_does_not_stop_the_others(paid: World) -> None:
    env = paid
    readable(env)
    first = completed(env, "RMA-1", 1_000)
    second = completed(env, "RMA-2", 1_000)
    seen: list[str] = []

    def read(awaited: AwaitedReference) -> None:
        seen.append(awaited.refund_id)
        if awaited.refund_id == first:
            raise TransientError("PayPal 503")

    counts = watch(env.repository, read, now=now)
    assert sorted(seen) == sorted([first, second])
    assert counts == {"awaiting": 2, "read": 1, "failed": 1}


class ListedStore:
    """A store whose listing names one completed refund per platform (only ``awaiting_acquirer_reference`` is used)."""

    def __init__(self, providers: list[str]) -> None:
        self.providers = providers
        self.since: datetime | None = None

    def awaiting_acquirer_reference(self, since: datetime) -> list[AwaitedReference]:
        self.since = since
        return [AwaitedReference(refund_id=f"rf_{name}", provider=name, completed_at=START) for name in self.providers]


def test_only_platforms_whose_refund_can_be_read_for_it_are_invoked() -> None:
    store = ListedStore(["paypal", "square", "adyen", "mollie", "shopify", "braintree", "klarna", "stripe"])
    read: list[str] = []
    counts = watch(store, lambda awaited: read.append(awaited.provider), now=now)  # type: ignore[arg-type]
    assert read == ["paypal", "mollie", "shopify", "braintree", "stripe"]
    assert counts == {"awaiting": 5, "read": 5, "failed": 0}
    # the listing starts at the cut-off (10 business days: 14 calendar days) and three days more
    assert store.since == now() - timedelta(days=17)


def test_the_view_says_why_a_platform_gives_no_reference_without_anything_written(paid: World) -> None:
    env = paid
    refund = env.repository.get(completed(env))
    assert reason_without_reference(refund) is None  # the fake platform (stripe) may still give one
    square = refund.model_copy(
        update={"payment": refund.payment.model_copy(update={"provider": PaymentProvider.SQUARE})}
    )
    assert reason_without_reference(square) == "Square exposes no acquirer reference for a refund"
    adyen = refund.model_copy(update={"payment": refund.payment.model_copy(update={"provider": PaymentProvider.ADYEN})})
    assert reason_without_reference(adyen) == (
        "Adyen gives the acquirer reference only in its refund webhook, and it carried none"
    )
    assert reason_without_reference(adyen.model_copy(update={"acquirer_reference": ARN})) is None
    recorded = refund.model_copy(update={"acquirer_reference_unavailable": REVERSAL})
    assert reason_without_reference(recorded) == REVERSAL
    assert not [e for e in env.repository.timeline(refund.refund_id) if e.type == ACQUIRER_REFERENCE_UNAVAILABLE]
