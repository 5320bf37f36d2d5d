"""Adyen HMAC verification and batch parsing (pure): the published vector, rotation, forged and partial batches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.simulators.adyen import sign_item
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.platforms.adyen.notifications import verified_items
from refundflow.platforms.adyen.signature import decode_keys, is_signed, signature, signing_string

PUBLISHED_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
KEY = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
OLD_KEY = "FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210"


def published_item() -> dict[str, Any]:
    return {
        "pspReference": "7914073381342284",
        "merchantReference": "TestPayment-1407325143704",
        "merchantAccountCode": "TestMerchant",
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "AUTHORISATION",
        "success": "true",
        "eventDate": "2019-05-06T17:15:34.121+02:00",
        "paymentMethod": "visa",
    }


def refund_item(**changes: Any) -> dict[str, Any]:
    item = {
        "amount": {"currency": "EUR", "value": 2500},
        "eventCode": "REFUND",
        "eventDate": "2026-12-06T03:00:00+00:00",
        "merchantAccountCode": "RefundflowECOM",
        "merchantReference": "rf_0123456789abcdef0123456789abcdef",
        "originalReference": "993617894903480A",
        "paymentMethod": "visa",
        "pspReference": "993617894906488A",
        "reason": "",
        "success": "true",
    }
    item.update(changes)
    return item


def batch(*items: dict[str, Any], key: str = KEY) -> bytes:
    signed = [
        {
            "NotificationRequestItem": {
                **item,
                "additionalData": {**item.get("additionalData", {}), "hmacSignature": sign_item(item, key)},
            }
        }
        for item in items
    ]
    return json.dumps({"live": "false", "notificationItems": signed}).encode()


def test_published_vector_signs_and_verifies() -> None:
    # GIVEN Adyen's documented example / WHEN signed with its key / THEN the documented signature
    item = published_item()
    expected = "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    assert signing_string(item) == expected
    assert signature(item, bytes.fromhex(PUBLISHED_KEY)) == "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="
    item["additionalData"] = {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="}
    assert is_signed(item, decode_keys([PUBLISHED_KEY]))


def test_a_batch_signed_by_the_simulator_verifies_item_by_item() -> None:
    # GIVEN two refund items signed with the current key
    body = batch(refund_item(), refund_item(pspReference="993617894906489B", success="false", reason="Declined"))
    # WHEN verified
    items = verified_items(body, decode_keys([KEY]))
    # THEN both come back parsed
    assert [(item.psp_reference, item.success, item.reason) for item in items] == [
        ("993617894906488A", "true", ""),
        ("993617894906489B", "false", "Declined"),
    ]
    assert items[0].original_reference == "993617894903480A"
    assert items[0].amount.value == 2500
    assert items[0].event_id == "993617894906488A:REFUND:true"


def test_rotation_accepts_the_previous_key_too() -> None:
    # GIVEN a batch still signed with the previous key while the new one propagates
    body = batch(refund_item(), key=OLD_KEY)
    # THEN it verifies when both keys are held, and not with the new key alone
    assert len(verified_items(body, decode_keys([KEY, OLD_KEY]))) == 1
    with pytest.raises(AuthenticationFailed):
        verified_items(body, decode_keys([KEY]))


def test_one_forged_item_refuses_the_whole_batch() -> None:
    # GIVEN a good batch whose second item's amount was changed after signing
    document = json.loads(batch(refund_item(), refund_item(pspReference="993617894906489B")))
    document["notificationItems"][1]["NotificationRequestItem"]["amount"]["value"] = 1
    # WHEN verified / THEN refused, naming the item
    with pytest.raises(AuthenticationFailed, match="item 1"):
        verified_items(json.dumps(document).encode(), decode_keys([KEY]))


def test_an_unsigned_item_is_refused() -> None:
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": refund_item()}]}).encode()
    with pytest.raises(AuthenticationFailed):
        verified_items(body, decode_keys([KEY]))


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"notificationItems": []}', b'{"notificationItems": [{"x": 1}]}', b"\xff\xfe"],
    ids=["text", "empty", "no-items", "no-wrapper", "not-utf8"],
)
def test_malformed_bodies_are_invalid_requests(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        verified_items(body, decode_keys([KEY]))


def test_a_signed_item_without_its_fields_is_invalid() -> None:
    item = refund_item()
    del item["eventDate"]
    with pytest.raises(InvalidRequest, match="malformed"):
        verified_items(batch(item), decode_keys([KEY]))


@pytest.mark.parametrize("keys", [[], ["xyz"], ["ABC"], [""]], ids=["none", "not-hex", "odd", "empty"])
def test_bad_keys_are_configuration_errors(keys: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        decode_keys(keys)


_FIELDS = ["pspReference", "originalReference", "merchantAccountCode", "merchantReference", "eventCode", "success"]


@given(field=st.sampled_from([*_FIELDS, "value", "currency"]), suffix=st.text(min_size=1, max_size=5))
def test_changing_any_signed_field_breaks_the_signature(field: str, suffix: str) -> None:
    # GIVEN a signed item
    item = refund_item()
    item["additionalData"] = {"hmacSignature": sign_item(item, KEY)}
    # WHEN one signed field is changed
    if field == "value":
        item["amount"] = {**item["amount"], "value": item["amount"]["value"] + len(suffix)}
    elif field == "currency":
        item["amount"] = {**item["amount"], "currency": suffix}
    else:
        item[field] = item[field] + suffix
    # THEN it no longer verifies
    assert not is_signed(item, decode_keys([KEY]))


@pytest.mark.parametrize(
    ("changes", "captured"),
    [
        ({"eventCode": "CAPTURE"}, "993617894903480A"),
        ({"eventCode": "CAPTURE", "success": "false"}, None),
        ({"eventCode": "AUTHORISATION", "additionalData": {"captureDelayHours": "0"}}, "993617894906488A"),
        ({"eventCode": "AUTHORISATION", "additionalData": {"captureDelayHours": "24"}}, None),
        ({"eventCode": "AUTHORISATION"}, None),
        ({"eventCode": "REFUND"}, None),
    ],
    ids=["capture", "capture-failed", "auth-immediate", "auth-delayed", "auth-unknown", "refund"],
)
def test_which_items_say_a_payment_is_captured(changes: dict[str, Any], captured: str | None) -> None:
    # GIVEN a signed item of each kind / WHEN parsed / THEN only a successful capture or an immediate one counts
    item = refund_item(**changes)
    (parsed,) = verified_items(batch(item), decode_keys([KEY]))
    assert parsed.captured_payment == captured
