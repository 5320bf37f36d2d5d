"""StripeRefundProvider against the Stripe simulator over real HTTP: refunds, errors, retries (R3, R9, R10)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
import requests
import stripe
from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule
from local.simulators.stripe import StripeSimulator
from refundflow.errors import (
    AlreadyDoneError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.stripe.connector import StripeRefundProvider
from refundflow.platforms.stripe.inbound import StripeInbound
from refundflow.ports import ProviderRefund, ProviderRefundRequest, ProviderRefundStatus
from tests.support.servers import serve_wsgi

API_KEY = "sk_test_refundflow_integration"
WEBHOOK_SECRET = "whsec_integration_0123456789"


class FastRetryClient(stripe.RequestsClient):
    """The SDK's own retry loop without its half-second minimum sleep, so retry tests stay fast."""

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return 0.01


class WebhookReceiver:
    """An endpoint that records what the simulator delivers."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self._lock:
            self.deliveries.append((dict(request.headers), request.get_data()))
        return Response("{}", mimetype="application/json")(environ, start_response)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[StripeSimulator, str, WebhookReceiver]]:
    # One simulator and one receiver per module: starting and stopping servers costs 0.5 s each.
    receiver = WebhookReceiver()
    with serve_wsgi(receiver) as receiver_url:
        simulator = StripeSimulator([API_KEY], webhook_url=receiver_url, webhook_secret=WEBHOOK_SECRET)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def simulator(servers: tuple[StripeSimulator, str, WebhookReceiver]) -> StripeSimulator:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=5)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.deliveries.clear()
    # Automatic async transitions off: each test moves refunds itself, deterministically.
    simulator.pending_refund_settle_seconds = None
    simulator.refund_fail_after_seconds = None
    simulator.processing_delay_seconds = 0.0
    return simulator


@pytest.fixture
def base_url(servers: tuple[StripeSimulator, str, WebhookReceiver], simulator: StripeSimulator) -> str:
    return servers[1]


@pytest.fixture
def receiver(servers: tuple[StripeSimulator, str, WebhookReceiver], simulator: StripeSimulator) -> WebhookReceiver:
    return servers[2]


def ref(payment_id: str) -> PaymentReference:
    return PaymentReference(provider=PaymentProvider.STRIPE, payment_id=payment_id)


ANY_PAYMENT = ref("pi_any")


def make_provider(base_url: str, **overrides: Any) -> StripeRefundProvider:
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "api_base": base_url,
        "timeout": (5.0, 30.0),
        "max_network_retries": 0,
    }
    options.update(overrides)
    return StripeRefundProvider(**options)


@pytest.fixture
def provider(base_url: str) -> StripeRefundProvider:
    return make_provider(base_url)


def pay(
    base_url: str,
    amount: int = 10_000,
    currency: str = "eur",
    method: str = "pm_card_visa",
    capture_method: Literal["automatic", "automatic_async", "manual"] = "automatic_async",
) -> str:
    """A confirmed PaymentIntent, created with the official SDK (which also proves it works against the simulator)."""
    client = stripe.StripeClient(API_KEY, base_addresses={"api": base_url}, max_network_retries=0)
    intent = client.v1.payment_intents.create(
        {
            "amount": amount,
            "currency": currency,
            "payment_method": method,
            "confirm": True,
            "capture_method": capture_method,
        }
    )
    return intent.id


def refund_request(
    payment_id: str,
    amount: int,
    currency: str = "EUR",
    *,
    key: str = "1",
    reason: RefundReason = RefundReason.PRODUCT_RETURN,
) -> ProviderRefundRequest:
    refund_id = derive_refund_id("test", payment_id, key)
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=ref(payment_id),
        amount=Money.of(amount, currency),
        reason=reason,
        idempotency_key=idempotency_key(refund_id, "refund"),
    )


def refund_posts(simulator: StripeSimulator) -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if seen["method"] == "POST" and seen["path"] == "/v1/refunds"]


# ---------------------------------------------------------------- happy paths


def test_full_refund_moves_the_whole_captured_amount(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a captured payment of 100.00 EUR
    payment = pay(base_url)
    request = refund_request(payment, 10_000)

    # WHEN it is refunded in full
    refund = provider.create_refund(request)

    # THEN Stripe holds one succeeded refund tagged with our refund id, and the charge is refunded
    assert refund.status is ProviderRefundStatus.SUCCEEDED
    assert (refund.amount, refund.payment_id, refund.refund_id) == (Money.of(10_000, "EUR"), payment, request.refund_id)
    [stored] = simulator.refunds_of(payment)
    assert (stored["amount"], stored["currency"], stored["reason"]) == (10_000, "eur", "requested_by_customer")
    after = provider.get_payment(ref(payment))
    assert (after.captured, after.refunded) == (Money.of(10_000, "EUR"), Money.of(10_000, "EUR"))
    assert simulator.charges[simulator.payment_intents[payment]["latest_charge"]]["refunded"] is True


def test_partial_refund_leaves_the_rest_refundable(provider: StripeRefundProvider, base_url: str) -> None:
    # GIVEN a captured payment of 100.00 EUR
    payment = pay(base_url)

    # WHEN 30.00 EUR are refunded
    refund = provider.create_refund(refund_request(payment, 3_000))

    # THEN
    assert refund.amount == Money.of(3_000, "EUR")
    assert provider.get_payment(ref(payment)).refunded == Money.of(3_000, "EUR")


def test_two_successive_partial_refunds_add_up(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a payment already partly refunded
    payment = pay(base_url)
    first = provider.create_refund(refund_request(payment, 3_000, key="1"))

    # WHEN a second, different refund takes the rest
    second = provider.create_refund(refund_request(payment, 7_000, key="2"))

    # THEN both exist and the payment is fully refunded
    assert first.provider_refund_id != second.provider_refund_id
    assert [refund["amount"] for refund in simulator.refunds_of(payment)] == [3_000, 7_000]
    assert provider.get_payment(ref(payment)).refunded == Money.of(10_000, "EUR")


def test_refund_of_a_charge_id_works_like_a_payment_intent(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a payment known by its Charge id
    charge = simulator.payment_intents[pay(base_url)]["latest_charge"]

    # WHEN it is refunded by charge
    refund = provider.create_refund(refund_request(charge, 2_500))

    # THEN Stripe names the PaymentIntent, and the charge's numbers follow
    assert refund.amount == Money.of(2_500, "EUR")
    assert provider.get_payment(ref(charge)).refunded == Money.of(2_500, "EUR")


def test_zero_decimal_refund_sends_yen_as_is(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a 5,000 JPY payment
    payment = pay(base_url, amount=5_000, currency="jpy")

    # WHEN 1,200 JPY are refunded
    refund = provider.create_refund(refund_request(payment, 1_200, "JPY"))

    # THEN Stripe received 1200 (yen), not 120000
    assert refund.amount == Money.of(1_200, "JPY")
    assert simulator.refunds_of(payment)[0]["amount"] == 1_200


@pytest.mark.parametrize(
    ("reason", "stripe_reason"),
    [
        (RefundReason.DUPLICATE_CHARGE, "duplicate"),
        (RefundReason.FRAUDULENT, "fraudulent"),
        (RefundReason.CHANGED_MIND, "requested_by_customer"),
        (RefundReason.GOODWILL, None),
    ],
)
def test_refund_reason_is_mapped_to_stripes_three_reasons(
    provider: StripeRefundProvider,
    simulator: StripeSimulator,
    base_url: str,
    reason: RefundReason,
    stripe_reason: str | None,
) -> None:
    # GIVEN a payment
    payment = pay(base_url)

    # WHEN it is refunded for a reason of ours
    provider.create_refund(refund_request(payment, 100, reason=reason))

    # THEN Stripe got its own reason, or none
    assert simulator.refunds_of(payment)[0]["reason"] == stripe_reason


# ---------------------------------------------------------------- refusals


def test_over_refund_is_rejected_with_stripes_reason(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN 100.00 EUR captured and 30.00 refunded
    payment = pay(base_url)
    provider.create_refund(refund_request(payment, 3_000, key="1"))

    # WHEN 80.00 more are asked for
    with pytest.raises(RejectedError) as rejected:
        provider.create_refund(refund_request(payment, 8_000, key="2"))

    # THEN it is refused, with Stripe's message, and nothing moved
    assert rejected.value.code == "amount_exceeds_refundable"
    assert "greater than unrefunded amount on charge" in rejected.value.message
    assert [refund["amount"] for refund in simulator.refunds_of(payment)] == [3_000]


def test_refund_of_a_fully_refunded_payment_is_already_done(provider: StripeRefundProvider, base_url: str) -> None:
    # GIVEN a payment refunded in full by someone else (another refund id)
    payment = pay(base_url)
    provider.create_refund(refund_request(payment, 10_000, key="elsewhere"))

    # WHEN a new refund is attempted
    with pytest.raises(AlreadyDoneError) as done:
        provider.create_refund(refund_request(payment, 1_000, key="ours"))

    # THEN Stripe's charge_already_refunded says the work is done
    assert done.value.code == "charge_already_refunded"


def test_refund_in_another_currency_than_the_payment_is_rejected_before_sending(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a JPY payment and a refund asked in EUR (Stripe's refund has no currency of its own)
    payment = pay(base_url, amount=5_000, currency="jpy")

    # WHEN
    with pytest.raises(RejectedError) as rejected:
        provider.create_refund(refund_request(payment, 1_000, "EUR"))

    # THEN no refund request left
    assert rejected.value.code == "currency_mismatch"
    assert refund_posts(simulator) == []


def test_wrong_api_key_is_a_final_refusal(simulator: StripeSimulator, base_url: str) -> None:
    # GIVEN a provider configured with a revoked key
    payment = pay(base_url)
    provider = make_provider(base_url, api_key="sk_test_revoked_key_000000")

    # WHEN / THEN
    with pytest.raises(RejectedError) as rejected:
        provider.create_refund(refund_request(payment, 1_000))
    assert rejected.value.code == "provider_authentication_failed"
    assert simulator.refunds_of(payment) == []


def test_unknown_payment_is_not_found(provider: StripeRefundProvider) -> None:
    # GIVEN ids Stripe never issued
    # WHEN / THEN reading it says NotFound, refunding it is a final refusal
    with pytest.raises(NotFound):
        provider.get_payment(ref("pi_doesnotexist"))
    with pytest.raises(NotFound):
        provider.get_payment(ref("ch_doesnotexist"))
    with pytest.raises(RejectedError) as rejected:
        provider.create_refund(refund_request("pi_doesnotexist", 100))
    assert rejected.value.code == "resource_missing"


def test_uncaptured_payment_is_refused(provider: StripeRefundProvider, base_url: str) -> None:
    # GIVEN a PaymentIntent authorised but not captured
    payment = pay(base_url, capture_method="manual")

    # WHEN / THEN
    with pytest.raises(RejectedError) as rejected:
        provider.get_payment(ref(payment))
    assert rejected.value.code == "payment_not_captured"


def test_unknown_refund_is_not_found(provider: StripeRefundProvider) -> None:
    # GIVEN / WHEN / THEN
    with pytest.raises(NotFound):
        provider.get_refund("re_doesnotexist", ANY_PAYMENT)


# ---------------------------------------------------------------- idempotency


def test_replay_with_the_same_key_returns_the_same_refund(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a refund already made under its key
    payment = pay(base_url)
    request = refund_request(payment, 4_000)
    first = provider.create_refund(request)

    # WHEN the same request is sent again (a workflow retry)
    again = provider.create_refund(request)

    # THEN Stripe replays the first answer: one refund only
    assert again == first
    assert len(simulator.refunds_of(payment)) == 1


def test_same_key_with_another_amount_is_rejected_and_creates_nothing(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a refund of 40.00 made under its key (R3)
    payment = pay(base_url)
    request = refund_request(payment, 4_000)
    provider.create_refund(request)

    # WHEN the same key comes with 50.00
    changed = request.model_copy(update={"amount": Money.of(5_000, "EUR")})
    with pytest.raises(RejectedError) as rejected:
        provider.create_refund(changed)

    # THEN it is refused clearly and the original refund stands alone
    assert rejected.value.code == "idempotency_key_reused"
    assert [refund["amount"] for refund in simulator.refunds_of(payment)] == [4_000]


# ---------------------------------------------------------------- transient failures (R10)


def create_like_the_workflow(
    provider: StripeRefundProvider, request: ProviderRefundRequest
) -> tuple[ProviderRefund, list[str]]:
    """The state machine's policy: retry transient errors, look before retrying an unknown outcome."""
    seen: list[str] = []
    for _ in range(5):
        try:
            return provider.create_refund(request), seen
        except TransientError as error:
            seen.append(f"transient:{error.code}:{error.retry_after_seconds}")
        except OutcomeUnknownError:
            seen.append("unknown")
            found = provider.find_refund(request.refund_id, ref(request.payment_id))
            if found is not None:
                return found, seen
    raise AssertionError(f"no refund after {seen}")


@pytest.mark.parametrize(
    ("status", "headers", "first_error"),
    [
        (500, {}, "unknown"),
        (503, {}, "unknown"),
        (429, {"Retry-After": "2"}, "transient:rate_limited:2.0"),
    ],
)
def test_provider_failure_then_success_with_the_same_key_refunds_exactly_once(
    provider: StripeRefundProvider,
    simulator: StripeSimulator,
    base_url: str,
    status: int,
    headers: dict[str, str],
    first_error: str,
) -> None:
    # GIVEN Stripe failing the next refund request before doing anything
    payment = pay(base_url)
    simulator.add_fault(FaultRule(method="POST", path="^/v1/refunds$", status=status, headers=headers, times=1))
    request = refund_request(payment, 2_000)

    # WHEN the workflow retries as its policy says
    refund, seen = create_like_the_workflow(provider, request)

    # THEN it succeeds once, every attempt carried the same key, and 5xx was treated as unknown
    assert seen == [first_error]
    assert refund.amount == Money.of(2_000, "EUR")
    assert len(simulator.refunds_of(payment)) == 1
    assert {seen["headers"].get("Idempotency-Key") for seen in refund_posts(simulator)} == {request.idempotency_key}


def test_sdk_retries_5xx_with_our_key_and_refunds_once(simulator: StripeSimulator, base_url: str) -> None:
    # GIVEN the SDK allowed two retries, and Stripe answering 500 then 503
    provider = make_provider(base_url, max_network_retries=2, http_client=FastRetryClient(timeout=(5.0, 30.0)))
    payment = pay(base_url)
    simulator.add_fault(FaultRule(method="POST", path="^/v1/refunds$", status=500, times=1))
    simulator.add_fault(FaultRule(method="POST", path="^/v1/refunds$", status=503, times=1))
    request = refund_request(payment, 2_000)

    # WHEN one create_refund call is made
    refund = provider.create_refund(request)

    # THEN the SDK's third attempt succeeded under the same key, with one refund at Stripe
    assert refund.status is ProviderRefundStatus.SUCCEEDED
    posts = refund_posts(simulator)
    assert [post["headers"].get("Idempotency-Key") for post in posts] == [request.idempotency_key] * 3
    assert len(simulator.refunds_of(payment)) == 1


LOCK_TIMEOUT = {
    "error": {
        "type": "invalid_request_error",
        "code": "lock_timeout",
        "message": "This object cannot be accessed right now because another API request or Stripe process is "
        "currently accessing it. If you see this error intermittently, retry the request.",
    }
}


def control_requests(base_url: str, method: str, path: str) -> list[dict[str, Any]]:
    """What the simulator received, read from its ``requests`` control route (as a test of the stack would)."""
    seen: list[dict[str, Any]] = requests.get(f"{base_url}/_control/requests", timeout=5).json()["requests"]
    return [item for item in seen if item["method"] == method and item["path"] == path]


@pytest.mark.parametrize(
    ("status", "body", "should_retry", "requests_made", "outcome"),
    [
        # the SDK's own rule retries a 5xx ...
        (503, None, None, 2, "refunded"),
        # ... unless Stripe says a retry is useless (a 5xx its idempotency layer would only replay)
        (503, None, "false", 1, "unknown"),
        # the SDK's own rule never retries a 429 ...
        (429, LOCK_TIMEOUT, None, 1, "transient"),
        # ... unless Stripe says a retry will work (an object lock that will be released)
        (429, LOCK_TIMEOUT, "true", 2, "refunded"),
    ],
    ids=["5xx", "5xx-should-retry-false", "lock-timeout", "lock-timeout-should-retry-true"],
)
def test_sdk_obeys_stripe_should_retry_before_its_own_rules(
    simulator: StripeSimulator,
    base_url: str,
    status: int,
    body: dict[str, Any] | None,
    should_retry: str | None,
    requests_made: int,
    outcome: str,
) -> None:
    # GIVEN an SDK allowed two retries, and Stripe failing the next refund request, with or without advice
    provider = make_provider(base_url, max_network_retries=2, http_client=FastRetryClient(timeout=(5.0, 30.0)))
    payment = pay(base_url)
    headers = {"Stripe-Should-Retry": should_retry} if should_retry else {}
    simulator.add_fault(FaultRule(method="POST", path="^/v1/refunds$", status=status, body=body, headers=headers))
    request = refund_request(payment, 2_000)

    # WHEN one create_refund call is made
    result = "refunded"
    try:
        provider.create_refund(request)
    except OutcomeUnknownError:
        result = "unknown"
    except TransientError:
        result = "transient"

    # THEN the SDK sent as many requests as the header (or, without one, its own rule) allows, all under our key
    posts = control_requests(base_url, "POST", "/v1/refunds")
    assert len(posts) == requests_made
    assert {post["headers"].get("Idempotency-Key") for post in posts} == {request.idempotency_key}
    assert result == outcome
    assert len(simulator.refunds_of(payment)) == (1 if outcome == "refunded" else 0)


def test_permanent_refusal_is_not_retried(simulator: StripeSimulator, base_url: str) -> None:
    # GIVEN an SDK allowed retries, and an over-refund (a 400)
    provider = make_provider(base_url, max_network_retries=2, http_client=FastRetryClient(timeout=(5.0, 30.0)))
    payment = pay(base_url, amount=1_000)

    # WHEN / THEN it is refused after exactly one request
    with pytest.raises(RejectedError):
        provider.create_refund(refund_request(payment, 5_000))
    assert len(refund_posts(simulator)) == 1


# ---------------------------------------------------------------- unknown outcomes (R9)


def test_refund_processed_then_500_is_an_unknown_outcome_that_find_refund_resolves(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN Stripe doing the refund and then answering 500 (a gateway failing after the work)
    payment = pay(base_url)
    simulator.add_fault(FaultRule(method="POST", path="^/v1/refunds$", status=500, when="after", times=1))
    request = refund_request(payment, 2_500)

    # WHEN the refund is sent
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(request)

    # THEN find_refund sees it, and a retry with the same key replays it: one refund at Stripe
    found = provider.find_refund(request.refund_id, ref(payment))
    assert found is not None
    assert (found.amount, found.refund_id) == (Money.of(2_500, "EUR"), request.refund_id)
    assert provider.create_refund(request).provider_refund_id == found.provider_refund_id
    assert len(simulator.refunds_of(payment)) == 1


def test_timeout_after_processing_is_an_unknown_outcome_and_no_second_refund_follows(
    simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a client that gives up reading after 0.1 s, and Stripe answering 2 s after the work
    provider = make_provider(base_url, timeout=(1.0, 0.1))
    payment = pay(base_url)
    simulator.processing_delay_seconds = 2.0
    request = refund_request(payment, 2_500)

    # WHEN the refund is sent
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(request)

    # THEN the refund is found by our reference, and the retry after the answer is a replay
    found = provider.find_refund(request.refund_id, ref(payment))
    assert found is not None
    assert found.refund_id == request.refund_id
    simulator.processing_delay_seconds = 0.0
    assert replay_once_the_key_is_free(provider, request).provider_refund_id == found.provider_refund_id
    assert len(simulator.refunds_of(payment)) == 1


def replay_once_the_key_is_free(provider: StripeRefundProvider, request: ProviderRefundRequest) -> ProviderRefund:
    """Retry while Stripe says the first request under the key is still running (409 ``idempotency_key_in_use``,
    which Stripe answers with ``Stripe-Should-Retry: true``), within a generous bound: no fixed sleep."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return provider.create_refund(request)
        except TransientError as error:
            if error.code != "idempotency_key_in_use" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_find_refund_pages_through_all_refunds_of_the_payment(simulator: StripeSimulator, base_url: str) -> None:
    # GIVEN three refunds on one payment and a provider that lists one per page
    provider = make_provider(base_url, list_page_size=1)
    payment = pay(base_url)
    requests_made = [refund_request(payment, 1_000, key=str(index)) for index in range(3)]
    created = [provider.create_refund(request) for request in requests_made]

    # WHEN the oldest is looked up (it is on the last page: Stripe lists newest first)
    found = provider.find_refund(requests_made[0].refund_id, ref(payment))

    # THEN it is found
    assert found == created[0]
    assert (
        len([seen for seen in simulator.requests_seen if seen["method"] == "GET" and seen["path"] == "/v1/refunds"])
        == 3
    )


def test_find_refund_answers_none_when_nothing_was_created(provider: StripeRefundProvider, base_url: str) -> None:
    # GIVEN a payment with a refund for someone else's request
    payment = pay(base_url)
    provider.create_refund(refund_request(payment, 1_000, key="other"))

    # WHEN / THEN our reference is not there, and an unknown payment has nothing either
    assert provider.find_refund(derive_refund_id("test", payment, "ours"), ref(payment)) is None
    assert provider.find_refund("rf_0", ref("pi_doesnotexist")) is None


# ---------------------------------------------------------------- async outcomes and webhooks


def delivered_events(
    simulator: StripeSimulator, receiver: WebhookReceiver, provider: StripeRefundProvider, count: int
) -> list[Any]:
    assert simulator.webhooks.wait_idle(timeout=30)
    assert len(receiver.deliveries) == count
    inbound, secret = StripeInbound(), {"webhook_secrets": [WEBHOOK_SECRET]}
    return [event for headers, body in receiver.deliveries for event in inbound.verify(headers, body, secret).events]


def test_pending_refund_then_succeeded_is_announced_by_signed_webhooks(
    provider: StripeRefundProvider,
    simulator: StripeSimulator,
    base_url: str,
    receiver: WebhookReceiver,
) -> None:
    # GIVEN a payment with Stripe's pending-refund test card
    payment = pay(base_url, method="pm_card_pendingRefund")

    # WHEN it is refunded, and the network later confirms the refund
    refund = provider.create_refund(refund_request(payment, 3_000))
    answer = requests.post(
        f"{base_url}/_control/refunds/{refund.provider_refund_id}/status", json={"status": "succeeded"}, timeout=5
    )

    # THEN the refund went pending -> succeeded, and every webhook verifies and tells the story
    assert refund.status is ProviderRefundStatus.PENDING
    assert answer.status_code == 200
    assert provider.get_refund(refund.provider_refund_id, ANY_PAYMENT).status is ProviderRefundStatus.SUCCEEDED
    events = delivered_events(simulator, receiver, provider, 3)
    assert [event.event_type for event in events] == ["refund.created", "charge.refunded", "refund.updated"]
    assert [event.payment and event.payment.payment_id for event in events] == [payment] * 3
    assert events[0].refunds[0].status is ProviderRefundStatus.PENDING
    assert events[2].refunds[0].status is ProviderRefundStatus.SUCCEEDED
    assert events[2].refunds[0].refund_id == refund.refund_id


def test_pending_refund_then_failed_gives_the_amount_back(
    provider: StripeRefundProvider,
    simulator: StripeSimulator,
    base_url: str,
    receiver: WebhookReceiver,
) -> None:
    # GIVEN a pending refund
    payment = pay(base_url, method="pm_card_pendingRefund")
    refund = provider.create_refund(refund_request(payment, 3_000))

    # WHEN the network refuses it
    simulator.set_refund_status(refund.provider_refund_id, "failed", "expired_or_canceled_card")

    # THEN it is failed with its reason, the charge counts it no longer, and refund.failed is signed
    failed = provider.get_refund(refund.provider_refund_id, ANY_PAYMENT)
    assert (failed.status, failed.failure_reason) == (ProviderRefundStatus.FAILED, "expired_or_canceled_card")
    assert provider.get_payment(ref(payment)).refunded == Money.zero("EUR")
    events = delivered_events(simulator, receiver, provider, 4)
    assert [event.event_type for event in events][-2:] == ["refund.updated", "refund.failed"]
    assert events[-1].refunds[0].failure_reason == "expired_or_canceled_card"


def wait_for_status(provider: StripeRefundProvider, refund_id: str, status: ProviderRefundStatus) -> None:
    deadline = time.monotonic() + 30  # a bound, not a pace: a busy machine may fire the simulator's timer late
    while provider.get_refund(refund_id, ANY_PAYMENT).status is not status:
        assert time.monotonic() < deadline, f"refund never became {status.value}"
        time.sleep(0.02)


def test_refund_fail_card_fails_after_looking_successful(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str, receiver: WebhookReceiver
) -> None:
    # GIVEN pm_card_refundFail refunds failing on their own after 50 ms
    simulator.refund_fail_after_seconds = 0.05
    payment = pay(base_url, method="pm_card_refundFail")

    # WHEN it is refunded
    refund = provider.create_refund(refund_request(payment, 3_000))

    # THEN the refund first succeeded, then failed without anyone touching it
    assert refund.status is ProviderRefundStatus.SUCCEEDED
    wait_for_status(provider, refund.provider_refund_id, ProviderRefundStatus.FAILED)
    types = [event.event_type for event in delivered_events(simulator, receiver, provider, 4)]
    assert types == ["refund.created", "charge.refunded", "refund.updated", "refund.failed"]


def test_pending_refund_card_succeeds_on_its_own(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN pm_card_pendingRefund refunds settling on their own after 50 ms
    simulator.pending_refund_settle_seconds = 0.05
    payment = pay(base_url, method="pm_card_pendingRefund")

    # WHEN it is refunded
    refund = provider.create_refund(refund_request(payment, 3_000))

    # THEN it starts pending and ends succeeded
    assert refund.status is ProviderRefundStatus.PENDING
    wait_for_status(provider, refund.provider_refund_id, ProviderRefundStatus.SUCCEEDED)


def test_a_payment_read_says_when_its_charge_was_captured(
    provider: StripeRefundProvider, simulator: StripeSimulator, base_url: str
) -> None:
    # GIVEN a captured payment (the sandbox stamps its charge's created, Unix seconds, as Stripe does)
    payment = pay(base_url)
    created = simulator.charges[simulator.payment_intents[payment]["latest_charge"]]["created"]
    # WHEN it is read: the capture moment is the charge's (what a split-tender refund's last_captured_first orders by)
    read = provider.get_payment(ref(payment))
    assert read.captured_at is not None
    assert int(read.captured_at.timestamp()) == created
    assert read.captured_at.utcoffset() is not None
