"""The payment conformance suite: what every payment connector and its simulator must do, checked under each
capability the platform declares in the catalog (and only those).

A platform runs it from ``tests/platforms/<name>/`` with a harness and one line::

    @pytest.fixture
    def harness() -> Iterator[PaymentHarness]: ...  # the connector configured against its simulator

    class TestStripeConformance(PaymentSuite):
        pass

What it checks: the capabilities record is the catalog's; refunds are made once under each declared
idempotency capability (a repeated key, a transient failure, an answer lost after the work); errors map to the
small set the domain knows (TransientError, OutcomeUnknownError, RejectedError, AlreadyDoneError, NotFound);
``get_refund`` / ``find_refund`` / ``get_payment`` answer only where declared (else UnsupportedOperation); money
is exact through the platform's currency profile (what the profile refuses is never sent); webhooks verify
(good), and are refused when forged, signed with another secret, stale, or partly forged in a batch; a platform
whose catalog entry has no inbound section (it sends no webhooks, e.g. Klarna's Order Management) runs the suite
without an inbound port or receiver, and the webhook checks are skipped for it only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from local.simulators.base import OutsideRefunds, PaymentSandbox
from refundflow import catalog
from refundflow.domain.external import external_refund_id
from refundflow.domain.inbound import apply_news
from refundflow.domain.recorder import EXTERNAL_REFUND_UNBOOKED
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    AuthenticationFailed,
    InvalidRequest,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundOrigin, RefundReason
from refundflow.money import Money
from refundflow.ports import (
    InboundPlatform,
    ProviderEvent,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
    RefundProvider,
)
from refundflow.status import RefundStatus
from tests.support.fakes import World
from tests.support.servers import DeliveryRecorder

Delivery = tuple[dict[str, str], bytes]


@dataclass
class PaymentHarness:
    """A platform's connector wired to its simulator, and the simulator's control.

    A lost answer (``timeout_after_commit``) closes the connection at once, whatever the read timeout.
    ``receiver`` records
    what the simulator delivers to the webhook URL it was given. ``async_seed``: ``seed_payment`` keyword
    arguments whose refunds stay open until ``settle_refund`` (empty when every refund is decided at once).
    ``restamp``: the delivery signed again as if sent ``age`` seconds ago (None: the scheme has no time).
    ``batch``: several deliveries as one (None: the platform sends one event per delivery). ``body_signed`` false:
    the platform authenticates the sender only (Chargebee's Basic credentials), so its verified news names the
    payment and carries no refund: the platform function reads every refund from the API before anything changes.
    ``inbound`` and ``receiver`` are None for a platform that sends no webhooks (no inbound section in its catalog
    entry)."""

    name: str
    connector: RefundProvider
    sandbox: PaymentSandbox
    inbound: InboundPlatform | None = None
    receiver: DeliveryRecorder | None = None
    currency: str = "EUR"
    async_seed: dict[str, Any] = field(default_factory=dict)
    restamp: Callable[[Delivery, float], Delivery] | None = None
    batch: Callable[[list[Delivery]], Delivery] | None = None
    body_signed: bool = True

    @property
    def verification_secret(self) -> Mapping[str, Any]:
        return self.sandbox.local_secrets()["verification"]

    def pay(self, minor_units: int = 10_000, currency: str | None = None, **seed: Any) -> PaymentReference:
        seeded = self.sandbox.seed_payment(minor_units, currency or self.currency, **seed)
        return PaymentReference(
            provider=PaymentProvider(seeded["provider"]), payment_id=seeded["payment_id"], locator=seeded["locator"]
        )

    def request(
        self, payment: PaymentReference, minor_units: int, currency: str | None = None
    ) -> ProviderRefundRequest:
        refund_id = derive_refund_id("conformance", uuid.uuid4().hex)
        return ProviderRefundRequest(
            refund_id=refund_id,
            payment=payment,
            amount=Money.of(minor_units, currency or self.currency),
            reason=RefundReason.PRODUCT_RETURN,
            idempotency_key=idempotency_key(refund_id, "refund"),
            metadata={"refund_id": refund_id, "source_reference": "RMA-CONFORMANCE"},
        )

    def refund_count(self) -> int:
        return len(self.sandbox.refunds())

    @property
    def webhooks(self) -> tuple[InboundPlatform, DeliveryRecorder]:
        """The inbound port and the receiver; skips the calling test for a platform that sends no webhooks."""
        if self.inbound is None or self.receiver is None:
            pytest.skip("the platform sends no webhooks")
        return self.inbound, self.receiver

    def events(self, deliveries: list[Delivery] | None = None) -> list[ProviderEvent]:
        """Every event of the deliveries (default: all received so far) that verifies."""
        inbound, receiver = self.webhooks
        found: list[ProviderEvent] = []
        for headers, body in receiver.deliveries if deliveries is None else deliveries:
            try:
                found.extend(inbound.verify(headers, body, self.verification_secret).events)
            except AuthenticationFailed:
                continue
        return found

    def wait_for_news(self, provider_refund_id: str, status: ProviderRefundStatus) -> Delivery:
        """The first delivery whose verified events say ``provider_refund_id`` reached ``status``."""

        def about(delivery: Delivery) -> bool:
            events = self.events([delivery])
            # News naming the refund by the platform's id only (Amazon Pay's IPN) says no status: it is read after.
            return any(
                refund.provider_refund_id == provider_refund_id and refund.status is status
                for event in events
                for refund in event.refunds
            ) or any(provider_refund_id in event.named_refund_ids for event in events)

        _, receiver = self.webhooks
        receiver.wait_until(lambda deliveries: any(about(delivery) for delivery in deliveries))
        return next(delivery for delivery in list(receiver.deliveries) if about(delivery))

    def wait_for_payment_news(self, payment_id: str) -> Delivery:
        """The first delivery whose verified events name the payment (platforms whose body is not signed)."""

        def about(delivery: Delivery) -> bool:
            return any(
                event.payment is not None and event.payment.payment_id == payment_id
                for event in self.events([delivery])
            )

        _, receiver = self.webhooks
        receiver.wait_until(lambda deliveries: any(about(delivery) for delivery in deliveries))
        return next(delivery for delivery in list(receiver.deliveries) if about(delivery))


def _settled_or_pending(refund: ProviderRefund) -> bool:
    return refund.status in {ProviderRefundStatus.SUCCEEDED, ProviderRefundStatus.PENDING}


class PaymentSuite:
    """Subclass it in a platform's tests with a ``harness`` fixture yielding a PaymentHarness."""

    # ------------------------------------------------------------ the capabilities record

    def test_the_capabilities_are_the_catalogs(self, harness: PaymentHarness) -> None:
        declared = catalog.payment_capabilities(harness.name)
        actual = harness.connector.capabilities
        assert harness.connector.name == harness.name
        assert actual.model_dump(exclude={"currencies"}) == declared.model_dump(exclude={"currencies"})
        assert actual.currencies.model_dump(exclude={"platform"}) == declared.currencies.model_dump(
            exclude={"platform"}
        )

    def test_the_simulator_offers_the_sandbox_control(self, harness: PaymentHarness) -> None:
        assert isinstance(harness.sandbox, PaymentSandbox)
        assert set(harness.sandbox.local_secrets()) == {"api", "verification"}

    def test_webhooks_are_checked_exactly_where_the_catalog_says_they_are_sent(self, harness: PaymentHarness) -> None:
        sends_webhooks = catalog.platform(harness.name).inbound is not None
        assert (harness.inbound is not None) == sends_webhooks
        assert (harness.receiver is not None) == sends_webhooks

    # ------------------------------------------------------------ refunds, once

    def test_a_refund_is_made_and_read_back(self, harness: PaymentHarness) -> None:
        # GIVEN a captured payment of 100.00
        payment = harness.pay(10_000)
        before = harness.refund_count()
        # WHEN 25.00 is refunded
        request = harness.request(payment, 2_500)
        made = harness.connector.create_refund(request)
        # THEN one refund of exactly that amount exists, for that payment, live
        assert harness.refund_count() == before + 1
        assert made.amount == request.amount
        assert made.payment_id == payment.payment_id
        assert _settled_or_pending(made)
        if made.refund_id is not None:
            assert made.refund_id == request.refund_id
        # AND it reads back wherever the platform can be read
        capabilities = harness.connector.capabilities
        if capabilities.outcome == "pollable":
            read = harness.connector.get_refund(made.provider_refund_id, payment)
            assert (read.provider_refund_id, read.amount) == (made.provider_refund_id, request.amount)
        if capabilities.payment_lookup:
            seen = harness.connector.get_payment(payment)
            assert seen.captured == Money.of(10_000, harness.currency)
            assert seen.refunded == request.amount

    def test_the_same_key_twice_refunds_once(self, harness: PaymentHarness) -> None:
        if not harness.connector.capabilities.idempotency.supported:
            pytest.skip("the platform takes no idempotency key")
        payment = harness.pay(10_000)
        before = harness.refund_count()
        request = harness.request(payment, 2_500)
        first = harness.connector.create_refund(request)
        second = harness.connector.create_refund(request)
        assert second.provider_refund_id == first.provider_refund_id
        assert harness.refund_count() == before + 1

    def test_partial_refunds_add_up_and_an_over_refund_is_refused(self, harness: PaymentHarness) -> None:
        capabilities = harness.connector.capabilities
        if not capabilities.partial_refunds:
            pytest.skip("the platform refunds in full only")
        payment = harness.pay(10_000)
        harness.connector.create_refund(harness.request(payment, 3_000))
        harness.connector.create_refund(harness.request(payment, 2_000))
        if capabilities.payment_lookup:
            assert harness.connector.get_payment(payment).refunded == Money.of(5_000, harness.currency)
        if capabilities.outcome == "pollable":
            # more than is left is refused at once (a webhook-only platform tells it by webhook instead); 9,000 on
            # 5,000 left is beyond any platform's over-refund allowance too (Amazon Pay takes up to 15 % more than
            # was captured: refundflow's refundable balance is what keeps within the capture there)
            with pytest.raises(RejectedError):
                harness.connector.create_refund(harness.request(payment, 9_000))

    def test_a_fully_refunded_payment_is_already_done_or_refused(self, harness: PaymentHarness) -> None:
        if harness.connector.capabilities.outcome != "pollable":
            pytest.skip("a webhook-only platform refuses by webhook")
        payment = harness.pay(10_000)
        harness.connector.create_refund(harness.request(payment, 10_000))
        # 20 % more than the capture: beyond Amazon Pay's over-refund allowance (15 %, at most 75 USD/EUR/GBP) too
        with pytest.raises((AlreadyDoneError, RejectedError)):
            harness.connector.create_refund(harness.request(payment, 2_000))

    # ------------------------------------------------------------ optional operations, only where declared

    def test_find_refund_answers_only_where_declared(self, harness: PaymentHarness) -> None:
        payment = harness.pay(10_000)
        request = harness.request(payment, 2_500)
        made = harness.connector.create_refund(request)
        if not harness.connector.capabilities.find_by_reference:
            with pytest.raises(UnsupportedOperation):
                harness.connector.find_refund(request.refund_id, payment)
            return
        found = harness.connector.find_refund(request.refund_id, payment)
        assert found is not None
        assert found.provider_refund_id == made.provider_refund_id
        assert harness.connector.find_refund(derive_refund_id("conformance", "never-made"), payment) is None

    def test_get_refund_answers_only_for_pollable_platforms(self, harness: PaymentHarness) -> None:
        payment = harness.pay(10_000)
        made = harness.connector.create_refund(harness.request(payment, 2_500))
        if harness.connector.capabilities.outcome == "pollable":
            assert harness.connector.get_refund(made.provider_refund_id, payment).provider_refund_id == (
                made.provider_refund_id
            )
        else:
            with pytest.raises(UnsupportedOperation):
                harness.connector.get_refund(made.provider_refund_id, payment)

    def test_a_platform_that_cannot_be_read_reports_its_captures_by_webhook(self, harness: PaymentHarness) -> None:
        if harness.connector.capabilities.payment_lookup:
            pytest.skip("the payment is read from the platform")
        # GIVEN a payment captured at a platform that cannot be read
        payment = harness.pay(10_000)

        # THEN its verified news reports the capture: the only source of what is refundable there
        def reported(deliveries: list[Delivery]) -> bool:
            return any(
                news.payment_id == payment.payment_id and news.captured == Money.of(10_000, harness.currency)
                for event in harness.events(deliveries)
                for news in event.payments
            )

        _, receiver = harness.webhooks
        receiver.wait_until(reported)

    def test_get_payment_answers_only_where_declared(self, harness: PaymentHarness) -> None:
        payment = harness.pay(10_000)
        if harness.connector.capabilities.payment_lookup:
            assert harness.connector.get_payment(payment).captured == Money.of(10_000, harness.currency)
        else:
            with pytest.raises(UnsupportedOperation):
                harness.connector.get_payment(payment)

    # ------------------------------------------------------------ failures, in the small set

    def test_a_transient_failure_is_transient_and_the_retry_refunds_once(self, harness: PaymentHarness) -> None:
        payment = harness.pay(10_000)
        before = harness.refund_count()
        request = harness.request(payment, 2_500)
        harness.sandbox.inject_fault("create_refund", "transient")
        with pytest.raises(TransientError):
            harness.connector.create_refund(request)
        assert harness.refund_count() == before
        assert _settled_or_pending(harness.connector.create_refund(request))
        assert harness.refund_count() == before + 1

    def test_a_server_error_is_never_taken_for_an_answer(self, harness: PaymentHarness) -> None:
        payment = harness.pay(10_000)
        request = harness.request(payment, 2_500)
        harness.sandbox.inject_fault("create_refund", "server_error")
        with pytest.raises((TransientError, OutcomeUnknownError)):
            harness.connector.create_refund(request)

    def test_an_answer_lost_after_the_work_is_unknown_and_resolves_to_one_refund(self, harness: PaymentHarness) -> None:
        # GIVEN a refund the platform makes, whose answer does not arrive in time
        payment = harness.pay(10_000)
        before = harness.refund_count()
        request = harness.request(payment, 2_500)
        harness.sandbox.inject_fault("create_refund", "timeout_after_commit")
        with pytest.raises(OutcomeUnknownError):
            harness.connector.create_refund(request)
        assert harness.refund_count() == before + 1
        # WHEN it is resolved the way the platform allows
        capabilities = harness.connector.capabilities
        if capabilities.find_by_reference:
            resolved = harness.connector.find_refund(request.refund_id, payment)
        elif capabilities.idempotency.supported:
            resolved = harness.connector.create_refund(request)
        else:
            pytest.skip("neither find nor idempotency: the domain leaves it to a person")
        # THEN it is the one refund made
        assert resolved is not None
        assert resolved.amount == request.amount
        assert harness.refund_count() == before + 1

    # ------------------------------------------------------------ money, exact through the profile

    def test_amounts_round_trip_exactly_in_a_zero_decimal_currency(self, harness: PaymentHarness) -> None:
        # The platform's own rule where it has one (a list of the currencies it takes), else its profile's.
        representable = catalog.representable(harness.name) or harness.connector.capabilities.currencies.representable
        if representable(Money.of(1_000, "JPY")) is not None:
            pytest.skip("the platform does not take JPY")
        payment = harness.pay(5_000, "JPY")
        made = harness.connector.create_refund(harness.request(payment, 1_234, "JPY"))
        assert made.amount == Money.of(1_234, "JPY")

    def test_what_the_profile_refuses_is_never_sent(self, harness: PaymentHarness) -> None:
        profile = harness.connector.capabilities.currencies
        refused = sorted(profile.refused)
        if not refused:
            pytest.skip("the platform's profile refuses no currency")
        payment = harness.pay(10_000)
        before = len(harness.sandbox.refunds())
        request = harness.request(payment, 1_000).model_copy(update={"amount": Money.of(1_000, refused[0])})
        with pytest.raises(AmountNotRepresentable):
            harness.connector.create_refund(request)
        assert len(harness.sandbox.refunds()) == before

    # ------------------------------------------------------------ webhooks

    def _settled_news(self, harness: PaymentHarness) -> tuple[ProviderRefundRequest, Delivery]:
        """A refund decided at the platform after it was made, and the delivery that says so."""
        payment = harness.pay(10_000, **harness.async_seed)
        request = harness.request(payment, 2_500)
        made = harness.connector.create_refund(request)
        if made.status is ProviderRefundStatus.PENDING:
            harness.sandbox.settle_refund(made.provider_refund_id, True)
        if not harness.body_signed:
            return request, harness.wait_for_payment_news(payment.payment_id)
        return request, harness.wait_for_news(made.provider_refund_id, ProviderRefundStatus.SUCCEEDED)

    def test_a_signed_delivery_verifies_and_names_our_refund(self, harness: PaymentHarness) -> None:
        inbound, _ = harness.webhooks
        request, (headers, body) = self._settled_news(harness)
        delivery = inbound.verify(headers, body, harness.verification_secret)
        assert delivery.answer.status == 200
        if not harness.body_signed:
            # an authenticated sender, an unsigned body: the news names the payment, nothing of the body is believed
            assert any(event.payment == request.payment for event in delivery.events)
            assert all(not event.refunds and not event.payments for event in delivery.events)
            return
        refunds = [refund for event in delivery.events for refund in event.refunds]
        named = [refund_id for event in delivery.events for refund_id in event.named_refund_ids]
        if refunds or not named:
            assert any(refund.amount == request.amount for refund in refunds)
        else:
            # id-only news: the refund it names, read from the platform, is the one made
            read = [harness.connector.get_refund(refund_id, request.payment) for refund_id in named]
            assert any(refund.amount == request.amount for refund in read)
        echoed = [refund.refund_id for refund in refunds if refund.refund_id is not None]
        assert set(echoed) <= {request.refund_id}
        assert all(event.provider.value == harness.name for event in delivery.events)

    def test_a_forged_delivery_is_refused(self, harness: PaymentHarness) -> None:
        inbound, _ = harness.webhooks
        _, (headers, body) = self._settled_news(harness)
        forged = body.replace(b"2500", b"9500", 1) if b"2500" in body else body[:-1] + bytes([body[-1] ^ 1])
        if not harness.body_signed:
            # the body is not signed: a changed one still comes from the authenticated sender, and none of its
            # amounts or outcomes is taken (the platform function reads the refund from the API)
            events = inbound.verify(headers, forged, harness.verification_secret).events
            assert all(not event.refunds and not event.payments for event in events)
            return
        with pytest.raises(AuthenticationFailed):
            inbound.verify(headers, forged, harness.verification_secret)

    def test_an_empty_body_under_real_signature_headers_is_refused(self, harness: PaymentHarness) -> None:
        inbound, _ = harness.webhooks
        _, (headers, _body) = self._settled_news(harness)
        with pytest.raises((AuthenticationFailed, InvalidRequest)):
            inbound.verify(headers, b"", harness.verification_secret)

    def test_a_delivery_signed_with_another_secret_is_refused(self, harness: PaymentHarness) -> None:
        inbound, _ = harness.webhooks
        _, (headers, body) = self._settled_news(harness)
        other = {key: _other(value) for key, value in harness.verification_secret.items()}
        with pytest.raises(AuthenticationFailed):
            inbound.verify(headers, body, other)

    def test_a_stale_delivery_is_refused(self, harness: PaymentHarness) -> None:
        if harness.restamp is None:
            pytest.skip("the platform's signature carries no time")
        inbound, _ = harness.webhooks
        _, delivery = self._settled_news(harness)
        headers, body = harness.restamp(delivery, 3_600.0)
        with pytest.raises(AuthenticationFailed):
            inbound.verify(headers, body, harness.verification_secret)

    def test_a_batch_verifies_whole_or_not_at_all(self, harness: PaymentHarness) -> None:
        if harness.batch is None:
            pytest.skip("the platform sends one event per delivery")
        inbound, _ = harness.webhooks
        _, first = self._settled_news(harness)
        _, second = self._settled_news(harness)
        headers, body = harness.batch([first, second])
        assert len(inbound.verify(headers, body, harness.verification_secret).events) >= 2
        forged_headers, forged_body = harness.batch([first, (second[0], second[1].replace(b"2500", b"9500", 1))])
        with pytest.raises(AuthenticationFailed):
            inbound.verify(forged_headers, forged_body, harness.verification_secret)

    # ------------------------------------------------------------ refunds made outside refundflow (issue 12)

    def test_a_refund_made_outside_refundflow_is_recorded_from_its_news(
        self, harness: PaymentHarness, env: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """What the platform tells of a refund a person made in its dashboard reaches ``domain.external``: one
        refund of origin external, the platform's amount, recorded once however often the news comes."""
        harness.webhooks  # noqa: B018 - skips a platform that sends no webhooks (Klarna tells us nothing)
        monkeypatch.delenv("EXTERNAL_REFUND_BOOKING", raising=False)
        if not isinstance(harness.sandbox, OutsideRefunds):
            pytest.fail(f"{harness.name}'s sandbox sends webhooks and cannot make a refund outside refundflow")
        # GIVEN a payment of which a person refunded 25.00 at the platform (no reference of ours on it)
        payment = harness.pay(10_000)
        made = harness.sandbox.refund_outside(payment.payment_id, 2_500)
        # WHEN its news arrives (twice: platforms redeliver) and the platform's function applies it
        if harness.body_signed:
            delivery = harness.wait_for_news(made, ProviderRefundStatus.SUCCEEDED)
        else:
            delivery = harness.wait_for_payment_news(payment.payment_id)
        events = harness.events([delivery])
        assert events
        for _ in range(2):
            for event in events:
                apply_news(event, recorder=env.recorder, provider=harness.connector, callbacks=env.callbacks)
        # THEN one refund of origin external holds it, with the platform's amount; no invoice of ours names the
        # payment, so a person books it
        recorded = env.repository.find(external_refund_id(harness.name, made))
        assert recorded is not None
        assert (recorded.origin, recorded.provider_refund_id, recorded.amount) == (
            RefundOrigin.EXTERNAL,
            made,
            Money.of(2_500, harness.currency),
        )
        assert (recorded.status, recorded.attention_reason) == (RefundStatus.NEEDS_ATTENTION, EXTERNAL_REFUND_UNBOOKED)
        entries = [entry.type for entry in env.repository.timeline(recorded.refund_id)]
        assert entries.count("ExternalRefundRecorded") == 1


def _other(value: Any) -> Any:
    """The same shape of secret (prefix, length, alphabet) with its last character changed."""
    if isinstance(value, str) and value:
        last = value[-1]
        return value[:-1] + ("1" if last == "0" else "0" if last.isalnum() else "x")
    if isinstance(value, list):
        return [_other(item) for item in value]
    return value
