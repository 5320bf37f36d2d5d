"""Known vectors that pin how an audit entry is digested, for both schemes.

Every stored trail is verified with these rules after each deploy: if one of these tests fails, the change
would make stored trails report themselves broken. Change the digest only under a new scheme name (and keep
verifying the old ones); never edit these vectors to make a test pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from refundflow.audit import (
    GENESIS_HASH,
    KEYED_SCHEME,
    LEGACY_SCHEME,
    AuditKeys,
    canonical_json,
    entry_hash,
    entry_mac,
    verify_chain,
)
from refundflow.errors import ConfigurationError
from refundflow.models import AuditEntry

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
SECRET = {
    "keys": {"k1": base64.b64encode(KEY_1).decode(), "k2": base64.b64encode(KEY_2).decode()},
    "current": "k1",
}
FIRST: dict[str, Any] = {
    "refund_id": "rf_0123456789abcdef0123456789abcdef",
    "seq": 1,
    "at": datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC),
    "type": "RefundRequested",
    "actor": "intake:returns-portal",
    "from_status": None,
    "to_status": "RECEIVED",
    "details": {"amount": {"minor_units": 2500, "currency": "EUR"}, "note": "Größe passt nicht"},
    "prev_hash": GENESIS_HASH,
}
SECOND: dict[str, Any] = {
    **FIRST,
    "seq": 2,
    "at": datetime(2025, 3, 1, 12, 0, 1, 500_000, tzinfo=UTC),
    "type": "StatusChanged:VALIDATED",
    "actor": "step:validate",
    "from_status": "RECEIVED",
    "to_status": "VALIDATED",
    "details": {},
}

# HMAC-SHA256 (v2): entry 1 under k1, entry 2 under k2 (after a rotation).
V2_FIRST_MAC = "f5c89423580bd101924b74784c0c1009ad8a42edc8da122332e75c75b6f5abed"
V2_SECOND_MAC = "5c714a8d569fea2015efce0e74950e73ac1161a9849a0df34a6427f10e3ed9b5"
# SHA-256 (v1): the same two entries as the trails written before the keyed scheme.
V1_FIRST_HASH = "4e271bb95150916cd26519a3c69921994656ec86846b4746fe4f5793cb36e19d"
V1_SECOND_HASH = "c794b0550e21e3aa16f07b5d77c5696e5f358d66bcad87e8067eba773e52fcff"
V2_FIRST_MESSAGE = (
    GENESIS_HASH + "\n"
    '{"actor":"intake:returns-portal","at":"2025-03-01T12:00:00Z",'
    '"details":{"amount":{"currency":"EUR","minor_units":2500},"note":"Größe passt nicht"},'
    '"from_status":null,"key_id":"k1","prev_hash":"' + GENESIS_HASH + '",'
    '"refund_id":"rf_0123456789abcdef0123456789abcdef","scheme":"hmac-sha256-v2","seq":1,'
    '"to_status":"RECEIVED","type":"RefundRequested"}'
)


def keyed_chain() -> list[AuditEntry]:
    keys = AuditKeys.from_secret(SECRET)
    first = keys.seal(FIRST)
    rotated = AuditKeys(keys=keys.keys, current="k2")
    second = rotated.seal({**SECOND, "prev_hash": first.hash})
    return [first, second]


def legacy_chain() -> list[AuditEntry]:
    first = AuditEntry.model_validate({**FIRST, "hash": V1_FIRST_HASH})
    second = AuditEntry.model_validate({**SECOND, "prev_hash": V1_FIRST_HASH, "hash": V1_SECOND_HASH})
    return [first, second]


def test_the_keyed_scheme_gives_the_pinned_macs() -> None:
    # GIVEN two fixed entries and fixed keys (the second signed after rotating to k2)
    first, second = keyed_chain()
    # THEN each entry names its scheme and key, and its MAC is the pinned one
    assert (first.scheme, first.key_id, second.key_id) == (KEYED_SCHEME, "k1", "k2")
    assert first.hash == V2_FIRST_MAC
    assert second.prev_hash == V2_FIRST_MAC
    assert second.hash == V2_SECOND_MAC


def test_the_keyed_mac_is_hmac_sha256_over_the_previous_mac_and_the_canonical_entry() -> None:
    # GIVEN the documented message: previous MAC, a newline, the sorted compact JSON of the entry without its MAC
    first = keyed_chain()[0]
    assert f"{GENESIS_HASH}\n{canonical_json(first.model_dump(mode='json', exclude={'hash'}))}" == V2_FIRST_MESSAGE
    # THEN the MAC is plain HMAC-SHA256 of those UTF-8 bytes under the key
    assert hmac.new(KEY_1, V2_FIRST_MESSAGE.encode(), hashlib.sha256).hexdigest() == V2_FIRST_MAC
    assert entry_mac(KEY_1, GENESIS_HASH, first.model_dump(mode="json")) == V2_FIRST_MAC


def test_the_legacy_scheme_gives_the_pinned_hashes() -> None:
    # GIVEN the same entries as the legacy scheme stored them (no scheme, no key id)
    first_fields = AuditEntry.model_validate({**FIRST, "hash": ""}).model_dump(mode="json")
    second_fields = AuditEntry.model_validate({**SECOND, "prev_hash": V1_FIRST_HASH, "hash": ""}).model_dump(
        mode="json"
    )
    # THEN the plain SHA-256 chain gives the pinned hashes, and the scheme fields are not part of it
    assert entry_hash(GENESIS_HASH, first_fields) == V1_FIRST_HASH
    assert entry_hash(V1_FIRST_HASH, second_fields) == V1_SECOND_HASH
    legacy_body = {key: value for key, value in first_fields.items() if key not in {"hash", "scheme", "key_id"}}
    message = f"{GENESIS_HASH}\n{canonical_json(legacy_body)}".encode()
    assert hashlib.sha256(message).hexdigest() == V1_FIRST_HASH


def test_an_entry_stored_without_scheme_fields_reads_as_legacy_and_verifies_unkeyed() -> None:
    # GIVEN a trail as the previous release stored it (items without scheme or key id)
    chain = legacy_chain()
    # WHEN verified THEN it is intact and reported as not keyed
    assert chain[0].scheme == LEGACY_SCHEME
    result = verify_chain(chain, expected_head=V1_SECOND_HASH)
    assert (result.intact, result.keyed, result.entries) == (True, False, 2)


def test_the_pinned_keyed_chain_verifies_with_both_keys_and_is_keyed() -> None:
    result = verify_chain(keyed_chain(), expected_head=V2_SECOND_MAC, keys=AuditKeys.from_secret(SECRET))
    assert (result.intact, result.keyed, result.entries) == (True, True, 2)


@pytest.mark.parametrize(
    "secret",
    [
        {},
        {"keys": {}, "current": "k1"},
        {"keys": {"k1": base64.b64encode(KEY_1).decode()}, "current": "k9"},
        {"keys": {"k1": "not base64!"}, "current": "k1"},
        {"keys": {"k1": base64.b64encode(b"short").decode()}, "current": "k1"},
    ],
    ids=["empty", "no-keys", "current-unknown", "not-base64", "short-key"],
)
def test_a_malformed_audit_key_secret_is_refused_at_load(secret: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AuditKeys.from_secret(secret)
