"""The sample PayPal events in events/paypal/: valid for PayPal's webhooks spec, and what intake makes of them once
signed the way PayPal signs (a test certificate served from PayPal's certificate URL, the production prefixes)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.paypal.inbound import PayPalInbound
from refundflow.platforms.paypal.webhooks import CertificateCache, signing_string
from refundflow.ports import ProviderRefundStatus
from tests.platforms.paypal import contract

EVENTS = Path(__file__).resolve().parents[3] / "events" / "paypal"
CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
WEBHOOK_ID = "9XL90610J3647323C"
NOW = datetime(2026, 12, 6, 3, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.sandbox.paypal.com")])
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM)


def signed(key: rsa.RSAPrivateKey, raw: bytes) -> dict[str, str]:
    transmission_id, sent_at = str(uuid.uuid4()), NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = key.sign(
        signing_string(transmission_id, sent_at, WEBHOOK_ID, raw).encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return {
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": sent_at,
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
        "PAYPAL-CERT-URL": CERT_URL,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


def inbound(certificate: bytes) -> PayPalInbound:
    def fetch(url: str) -> bytes:
        assert url == CERT_URL
        return certificate

    return PayPalInbound(certificates=CertificateCache(fetch), now=NOW.timestamp)


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.name)
def test_samples_match_paypals_webhooks_spec(path: Path) -> None:
    assert contract.event_errors(json.loads(path.read_text())) == []


def test_capture_refunded_sample_is_a_succeeded_refund_of_our_refund_id(
    key: rsa.RSAPrivateKey, certificate: bytes
) -> None:
    raw = (EVENTS / "paypal_capture_refunded.json").read_bytes()
    [event] = inbound(certificate).verify(signed(key, raw), raw, {"webhook_ids": [WEBHOOK_ID]}).events
    [refund] = event.refunds
    assert event.payment is not None
    assert (event.payment.payment_id, event.payment.locator) == ("2GG279541U471931P", {})
    assert (refund.status, refund.refund_id, refund.amount) == (
        ProviderRefundStatus.SUCCEEDED,
        "rf_2f9a6c3be1d04d7f8a5b9c0d1e2f3a4b",
        Money.of(4_500, "EUR"),
    )
    assert event.occurred_at == datetime(2026, 12, 6, 3, 10, tzinfo=UTC)


def test_sale_refunded_sample_names_the_sale_with_its_locator(key: rsa.RSAPrivateKey, certificate: bytes) -> None:
    raw = (EVENTS / "paypal_sale_refunded.json").read_bytes()
    [event] = inbound(certificate).verify(signed(key, raw), raw, {"webhook_ids": [WEBHOOK_ID]}).events
    assert event.provider == PaymentProvider.PAYPAL
    assert event.payment is not None
    assert (event.payment.payment_id, event.payment.locator) == ("80F85758S3080410K", {"kind": "sale"})
    assert event.refunds[0].refund_id == "rf_7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"


def test_capture_completed_sample_is_acknowledged_and_not_news(key: rsa.RSAPrivateKey, certificate: bytes) -> None:
    raw = (EVENTS / "paypal_capture_completed.json").read_bytes()
    delivery = inbound(certificate).verify(signed(key, raw), raw, {"webhook_ids": [WEBHOOK_ID]})
    assert (delivery.events, delivery.answer.status) == ([], 200)
