"""PayPal webhook verification by certificate, and event parsing, on deliveries the simulator really sent."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.paypal import MANUAL, PayPalSimulator
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.paypal import webhooks
from refundflow.platforms.paypal.events import parse_event, refund_news
from refundflow.platforms.paypal.inbound import PayPalInbound
from refundflow.platforms.paypal.webhooks import CertificateCache, VerificationSecret, allowed_cert_url, verify
from refundflow.ports import ProviderRefundStatus
from tests.platforms.paypal.receiver import Delivery, Receiver
from tests.support.servers import serve_wsgi

WEBHOOK_ID = "3WH597110X687430LKGECATA"


class Fetches:
    """A certificate fetcher that records the URLs asked for (and really fetches over HTTP)."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.urls: list[str] = []
        self.answer = answer

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.answer is not None:
            return self.answer
        return requests.get(url, timeout=5).content


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with serve_wsgi(endpoint) as url:
        yield endpoint, url


@pytest.fixture(scope="module")
def server(receiver: tuple[Receiver, str]) -> Iterator[tuple[PayPalSimulator, str]]:
    simulator = PayPalSimulator(settle_after_seconds=None)
    with serve_wsgi(simulator) as url:
        simulator.public_url = url
        simulator.webhooks.configure(f"{receiver[1]}/webhooks/paypal", WEBHOOK_ID)
        yield simulator, url


def deliver(server: tuple[PayPalSimulator, str], receiver: tuple[Receiver, str], *, kind: str = "capture") -> Delivery:
    """One real delivery: a refund made over HTTP, completed, its event received."""
    simulator, url = server
    receiver[0].clear()
    token = requests.post(
        f"{url}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=tuple(simulator.local_secrets()["api"].values()),
        timeout=5,
    ).json()["access_token"]
    seeded = simulator.seed_payment(1_050, "EUR", behaviour=MANUAL, kind=kind)
    if kind == "capture":
        path = f"/v2/payments/captures/{seeded['payment_id']}/refund"
        body: dict[str, Any] = {"amount": {"currency_code": "EUR", "value": "2.50"}, "custom_id": "rf_abc"}
    else:
        path = f"/v1/payments/sale/{seeded['payment_id']}/refund"
        body = {"amount": {"total": "2.50", "currency": "EUR"}, "invoice_number": "rf_abc"}
    made = requests.post(
        f"{url}{path}", json=body, headers={"Authorization": f"Bearer {token}", "Prefer": "return=representation"}
    ).json()
    simulator.settle_refund(made["id"], succeeded=True)
    return receiver[0].wait_for(1)[0]


@pytest.fixture
def delivery(server: tuple[PayPalSimulator, str], receiver: tuple[Receiver, str]) -> Delivery:
    return deliver(server, receiver)


@pytest.fixture
def secret(server: tuple[PayPalSimulator, str]) -> VerificationSecret:
    return VerificationSecret.from_secret(server[0].local_secrets()["verification"])


def test_simulator_delivery_verifies_with_its_certificate(delivery: Delivery, secret: VerificationSecret) -> None:
    # GIVEN a delivery the simulator signed / WHEN verified by certificate / THEN the webhook id it was meant for
    fetches = Fetches()
    assert verify(delivery.headers, delivery.body, secret, certificates=CertificateCache(fetches)) == WEBHOOK_ID
    assert fetches.urls == [delivery.headers["Paypal-Cert-Url"]]


def test_certificate_is_fetched_once_per_url(
    server: tuple[PayPalSimulator, str], receiver: tuple[Receiver, str], secret: VerificationSecret
) -> None:
    fetches = Fetches()
    cache = CertificateCache(fetches)
    for _ in range(2):
        delivery = deliver(server, receiver)
        verify(delivery.headers, delivery.body, secret, certificates=cache)
    assert len(fetches.urls) == 1


def test_a_changed_body_does_not_verify(delivery: Delivery, secret: VerificationSecret) -> None:
    forged = delivery.body.replace(b'"2.50"', b'"9.50"')
    assert forged != delivery.body
    with pytest.raises(AuthenticationFailed) as raised:
        verify(delivery.headers, forged, secret, certificates=CertificateCache(Fetches()))
    assert raised.value.code == "signature_invalid"


def test_a_delivery_for_another_webhook_id_does_not_verify_unless_that_id_is_configured(delivery: Delivery) -> None:
    other = VerificationSecret.from_secret(
        {
            "webhook_ids": ["OTHERWEBHOOK"],
            "cert_url_prefixes": [delivery.headers["Paypal-Cert-Url"].rsplit("/", 1)[0] + "/"],
        }
    )
    with pytest.raises(AuthenticationFailed):
        verify(delivery.headers, delivery.body, other, certificates=CertificateCache(Fetches()))
    rotating = VerificationSecret(webhook_ids=("OTHERWEBHOOK", WEBHOOK_ID), cert_url_prefixes=other.cert_url_prefixes)
    assert verify(delivery.headers, delivery.body, rotating, certificates=CertificateCache(Fetches())) == WEBHOOK_ID


def test_a_stale_or_future_transmission_is_refused(delivery: Delivery, secret: VerificationSecret) -> None:
    sent_at = webhooks.parse_time(delivery.headers["Paypal-Transmission-Time"])
    for now in (sent_at + webhooks.TOLERANCE_SECONDS + 1, sent_at - webhooks.TOLERANCE_SECONDS - 1):
        with pytest.raises(AuthenticationFailed) as raised:
            verify(delivery.headers, delivery.body, secret, certificates=CertificateCache(Fetches()), now=now)
        assert raised.value.code == "signature_stale"


def test_a_certificate_url_outside_the_allowed_prefixes_is_never_fetched(delivery: Delivery) -> None:
    # GIVEN the default prefixes (PayPal's hosts only) and a delivery whose cert URL is the simulator's
    fetches = Fetches()
    with pytest.raises(AuthenticationFailed, match="allowed host"):
        verify(
            delivery.headers, delivery.body, VerificationSecret((WEBHOOK_ID,)), certificates=CertificateCache(fetches)
        )
    assert fetches.urls == []


def test_on_paypals_hosts_the_certificate_must_be_issued_to_paypal(
    delivery: Delivery, server: tuple[PayPalSimulator, str]
) -> None:
    # GIVEN the cert URL rewritten to PayPal's host (it is not signed) and a certificate not issued to paypal.com
    headers = {**delivery.headers, "Paypal-Cert-Url": "https://api-m.paypal.com/v1/notifications/certs/CERT-1-2-3"}
    fetches = Fetches(answer=server[0].certificate_pem.encode())
    # WHEN verified with the default prefixes / THEN refused for its subject, though the signature is good
    with pytest.raises(AuthenticationFailed, match=r"paypal\.com name"):
        verify(headers, delivery.body, VerificationSecret((WEBHOOK_ID,)), certificates=CertificateCache(fetches))
    assert fetches.urls == ["https://api-m.paypal.com/v1/notifications/certs/CERT-1-2-3"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77", True),
        ("https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77", True),
        ("http://api.paypal.com/v1/notifications/certs/CERT-1", False),
        ("https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1", False),
        ("https://api.paypal.com@evil.example/v1/notifications/certs/CERT-1", False),
        ("https://api.paypal.com:8443/v1/notifications/certs/CERT-1", False),
        ("https://api.paypal.com/v1/notifications/certs/CERT-1?x=1", False),
        ("https://api.paypal.com/v1/notifications/certs/../../redirect", False),
        ("https://api.paypal.com/v1/notifications/other/CERT-1", False),
        ("https://evil.example/v1/notifications/certs/CERT-1", False),
    ],
)
def test_certificate_urls_are_pinned_to_paypals_certificate_path(url: str, allowed: bool) -> None:
    assert allowed_cert_url(url, webhooks.PAYPAL_CERT_URL_PREFIXES) is allowed


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Paypal-Auth-Algo": "SHA1withRSA"}, "signature_invalid"),
        ({"Paypal-Transmission-Sig": "not base64!"}, "signature_invalid"),
        ({"Paypal-Transmission-Time": "yesterday"}, "signature_invalid"),
        ({"Paypal-Transmission-Id": ""}, "signature_missing"),
    ],
    ids=["algorithm", "signature", "time", "missing-id"],
)
def test_malformed_headers_are_refused(
    delivery: Delivery, secret: VerificationSecret, change: dict[str, str], code: str
) -> None:
    with pytest.raises(AuthenticationFailed) as raised:
        verify({**delivery.headers, **change}, delivery.body, secret, certificates=CertificateCache(Fetches()))
    assert raised.value.code == code


def test_signing_string_is_id_time_webhook_and_unsigned_crc32() -> None:
    body = b'{"id":"WH-1"}'
    assert webhooks.signing_string("t-1", "2026-01-01T00:00:00Z", "W1", body) == (
        f"t-1|2026-01-01T00:00:00Z|W1|{zlib.crc32(body) & 0xFFFFFFFF}"
    )


@pytest.mark.parametrize(
    "value",
    [{}, {"webhook_ids": "W1"}, {"webhook_ids": []}, {"webhook_ids": ["W1"], "cert_url_prefixes": ["ftp://x/"]}],
    ids=["nothing", "string", "empty", "bad-prefix"],
)
def test_verification_secret_is_checked_when_loaded(value: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        VerificationSecret.from_secret(value)


# ---------------------------------------------------------------- events


def test_capture_refunded_event_names_the_refund_capture_and_our_refund_id(delivery: Delivery) -> None:
    event = parse_event(json.loads(delivery.body))
    news = refund_news(event)
    assert news is not None
    assert (news.api, news.kind, news.status, news.refund_id) == ("v2", "capture", "COMPLETED", "rf_abc")
    assert news.amount == Money.of(250, "EUR")
    assert news.payment_id == event.resource["links"][1]["href"].rsplit("/", 1)[1]
    assert news.locator == {}


def test_sale_refunded_event_names_the_sale_and_our_refund_id(
    server: tuple[PayPalSimulator, str], receiver: tuple[Receiver, str]
) -> None:
    delivery = deliver(server, receiver, kind="sale")
    event = parse_event(delivery.event())
    news = refund_news(event)
    assert event.event_type == "PAYMENT.SALE.REFUNDED"
    assert news is not None
    assert (news.api, news.kind, news.refund_id, news.payment_id) == ("v1", "sale", "rf_abc", event.resource["sale_id"])
    assert news.locator == {"kind": "sale"}
    assert news.amount == Money.of(250, "EUR")


def test_events_about_other_resources_are_not_news() -> None:
    event = parse_event({"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource_type": "capture"})
    assert refund_news(event) is None


def test_a_refund_event_without_a_usable_resource_is_invalid() -> None:
    with pytest.raises(InvalidRequest):
        refund_news(parse_event({"id": "WH-1", "event_type": "PAYMENT.CAPTURE.REFUNDED", "resource": {}}))
    with pytest.raises(InvalidRequest):
        parse_event({"event_type": "PAYMENT.CAPTURE.REFUNDED"})


# ---------------------------------------------------------------- the inbound port


def test_inbound_turns_a_verified_refund_event_into_a_provider_event(
    delivery: Delivery, server: tuple[PayPalSimulator, str]
) -> None:
    # GIVEN intake's verification secret only (no API credentials)
    secret = server[0].local_secrets()["verification"]
    inbound = PayPalInbound(certificates=CertificateCache(Fetches()))
    # WHEN a delivery is verified / THEN one event naming the capture and the refund, and PayPal's 2xx answer
    verified = inbound.verify(delivery.headers, delivery.body, secret)
    assert verified.answer.status == 200
    [event] = verified.events
    resource = delivery.event()["resource"]
    assert (event.provider, event.event_type, event.event_id) == (
        PaymentProvider.PAYPAL,
        "PAYMENT.CAPTURE.REFUNDED",
        delivery.event()["id"],
    )
    assert event.payment is not None
    assert event.payment.locator == {}
    [refund] = event.refunds
    assert (refund.provider_refund_id, refund.refund_id, refund.amount, refund.status) == (
        resource["id"],
        "rf_abc",
        Money.of(250, "EUR"),
        ProviderRefundStatus.SUCCEEDED,
    )
    assert refund.payment_id == event.payment.payment_id


def test_inbound_refuses_a_forged_delivery_and_acknowledges_other_events(
    delivery: Delivery, server: tuple[PayPalSimulator, str]
) -> None:
    secret = server[0].local_secrets()["verification"]
    inbound = PayPalInbound(certificates=CertificateCache(Fetches()))
    with pytest.raises(AuthenticationFailed):
        inbound.verify(delivery.headers, delivery.body + b" ", secret)
    # GIVEN a correctly signed event about something else (signed here with the simulator's own key)
    body = json.dumps({"id": "WH-2", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource_type": "capture"}).encode()
    headers = server[0].sign_webhook(body, WEBHOOK_ID)
    verified = inbound.verify(headers, body, secret)
    assert (verified.events, verified.answer.status) == ([], 200)
