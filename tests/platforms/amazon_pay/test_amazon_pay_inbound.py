"""Amazon Pay IPNs: SNS-signed messages verified on the raw body, our merchant only, reduced to id-only news."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from local.simulators.amazon_pay import _sns_key
from refundflow.errors import AuthenticationFailed, ConfigurationError
from refundflow.platforms.amazon_pay.sns import allowed_cert_url
from refundflow.ports import InboundDelivery
from tests.platforms.amazon_pay.conftest import Served


def ipn(
    served: Served, object_type: str = "REFUND", object_id: str = "S01-1234567-1234567-R000001", **extra: str
) -> dict[str, Any]:
    return {
        "MerchantID": served.simulator.merchant_id,
        "ObjectType": object_type,
        "ObjectId": object_id,
        "ChargePermissionId": "S01-1234567-1234567",
        "NotificationType": "STATE_CHANGE",
        "NotificationId": "3f6d9b0e-0000-4000-8000-000000000001",
        "NotificationVersion": "V2",
        **extra,
    }


def verify(served: Served, message: dict[str, Any], secret: dict[str, Any] | None = None) -> InboundDelivery:
    body = json.dumps(message).encode()
    return served.inbound().verify({}, body, secret or served.simulator.local_secrets()["verification"])


def resigned(message: dict[str, Any], version: str = "2") -> dict[str, Any]:
    """``message`` signed again by the simulator's SNS key (after a change to what is signed)."""
    text = "".join(f"{key}\n{message[key]}\n" for key in ("Message", "MessageId", "Timestamp", "TopicArn", "Type"))
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = _sns_key().sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {**message, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode()}


def test_a_refund_ipn_verifies_to_news_naming_the_refund_by_amazons_id_only(fresh: Served) -> None:
    message = fresh.simulator.sns_message(ipn(fresh))
    delivery = verify(fresh, message)
    (event,) = delivery.events
    assert (event.provider.value, event.event_id, event.event_type) == (
        "amazon_pay",
        message["MessageId"],
        "REFUND.STATE_CHANGE",
    )
    assert (event.named_refund_ids, event.refunds, event.payment) == (["S01-1234567-1234567-R000001"], [], None)
    assert delivery.answer.status == 200


def test_a_redelivery_of_the_same_message_is_the_same_event(fresh: Served) -> None:
    message = fresh.simulator.sns_message(ipn(fresh))
    # SNS delivers the very same signed message again: the same event id, so intake ignores the second
    assert verify(fresh, message).events[0].event_id == verify(fresh, message).events[0].event_id


def test_a_charge_ipn_is_news_about_the_charge_and_other_objects_are_only_acknowledged(fresh: Served) -> None:
    (event,) = verify(fresh, fresh.simulator.sns_message(ipn(fresh, "CHARGE", "S01-1234567-1234567-C000001"))).events
    assert event.payment is not None
    assert event.payment.payment_id == "S01-1234567-1234567-C000001"
    for other in ("CHARGE_PERMISSION", "CHARGEBACK"):
        assert verify(fresh, fresh.simulator.sns_message(ipn(fresh, other, "S01-1234567-1234567"))).events == []


def test_a_forged_message_is_refused(fresh: Served) -> None:
    message = fresh.simulator.sns_message(ipn(fresh))
    forged = {**message, "Message": message["Message"].replace("R000001", "R000002")}
    with pytest.raises(AuthenticationFailed):
        verify(fresh, forged)


def test_an_ipn_for_another_merchant_is_refused_though_sns_signed_it(fresh: Served) -> None:
    message = fresh.simulator.sns_message(ipn(fresh, MerchantID="A1SOMEONEELSE"))
    with pytest.raises(AuthenticationFailed):
        verify(fresh, message)


def test_signature_version_1_is_sha1_and_an_unknown_version_is_refused(fresh: Served) -> None:
    message = fresh.simulator.sns_message(ipn(fresh))
    assert verify(fresh, resigned(message, "1")).events
    with pytest.raises(AuthenticationFailed):
        verify(fresh, {**resigned(message, "1"), "SignatureVersion": "2"})
    with pytest.raises(AuthenticationFailed):
        verify(fresh, {**message, "SignatureVersion": "3"})


def test_a_certificate_outside_amazon_sns_is_never_fetched(fresh: Served) -> None:
    message = fresh.simulator.sns_message(ipn(fresh))
    elsewhere = {**message, "SigningCertURL": "https://sns.us-east-1.amazonaws.com.attacker.example/cert.pem"}
    fetched: list[str] = []
    inbound = fresh.inbound()
    inbound._certificates._fetch = lambda url: fetched.append(url) or b""  # type: ignore[func-returns-value]
    with pytest.raises(AuthenticationFailed):
        inbound.verify({}, json.dumps(elsewhere).encode(), fresh.simulator.local_secrets()["verification"])
    assert fetched == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem", True),
        ("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem", False),
        ("https://evil.example/sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com/../x.pem", False),
        ("https://sns.us-east-1.amazonaws.com/x.pem?y=1", False),
    ],
)
def test_only_sns_hosts_serve_the_certificate_by_default(url: str, allowed: bool) -> None:
    assert allowed_cert_url(url, ()) is allowed


def test_a_body_that_is_not_a_signed_sns_message_is_refused(fresh: Served) -> None:
    secret = fresh.simulator.local_secrets()["verification"]
    for body in (b"", b"not json", b"[]", json.dumps(ipn(fresh)).encode()):
        with pytest.raises(AuthenticationFailed):
            fresh.inbound().verify({}, body, secret)


def test_a_verification_secret_without_merchant_ids_is_a_configuration_error(fresh: Served) -> None:
    with pytest.raises(ConfigurationError):
        verify(fresh, fresh.simulator.sns_message(ipn(fresh)), {"merchant_ids": []})
