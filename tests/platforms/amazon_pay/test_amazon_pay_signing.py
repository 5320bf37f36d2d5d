"""AMZN-PAY-RSASSA-PSS-V2: the canonical request, the string to sign and the signature, checked independently."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow.errors import ConfigurationError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.platforms.amazon_pay.signing import (
    amazon_idempotency_key,
    canonical_request,
    load_private_key,
    signed_headers,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AT = datetime(2019, 9, 23, 23, 19, 8, tzinfo=UTC)


def test_the_canonical_request_has_the_documented_layout() -> None:
    # GIVEN the request of Amazon Pay's signing example (POST /live/v2/checkoutSessions)
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "x-amz-pay-date": "20190923T231908Z",
        "x-amz-pay-host": "pay-api.amazon.com",
        "x-amz-pay-idempotency-key": "cllHyiNvS8cJ8Zas",
        "x-amz-pay-region": "us",
    }
    canonical, names = canonical_request("POST", "/live/v2/checkoutSessions", "", headers, b"{}")
    # THEN method, path, empty query, one sorted header line each, an empty line, the names, the payload's hash
    assert canonical.split("\n") == [
        "POST",
        "/live/v2/checkoutSessions",
        "",
        "accept:application/json",
        "content-type:application/json",
        "x-amz-pay-date:20190923T231908Z",
        "x-amz-pay-host:pay-api.amazon.com",
        "x-amz-pay-idempotency-key:cllHyiNvS8cJ8Zas",
        "x-amz-pay-region:us",
        "",
        names,
        hashlib.sha256(b"{}").hexdigest(),
    ]
    assert names == "accept;content-type;x-amz-pay-date;x-amz-pay-host;x-amz-pay-idempotency-key;x-amz-pay-region"


def test_the_signature_verifies_with_the_public_key_as_rsassa_pss_sha256_salt_32() -> None:
    # GIVEN a signed refund request
    body = b'{"chargeId":"S01-1-1-C1","refundAmount":{"amount":"14.00","currencyCode":"USD"}}'
    headers = signed_headers(
        key=KEY,
        public_key_id="SANDBOX-KEY",
        method="POST",
        path="/sandbox/v2/refunds",
        host="pay-api.amazon.com",
        region="na",
        payload=body,
        at=AT,
        idempotency_key="k1",
    )
    # WHEN the string to sign is rebuilt here from the headers sent
    scheme, _, rest = headers["authorization"].partition(" ")
    fields = dict(part.split("=", 1) for part in rest.split(", "))
    names = fields["SignedHeaders"].split(";")
    lines = "".join(f"{name}:{headers[name]}\n" for name in names)
    canonical = f"POST\n/sandbox/v2/refunds\n\n{lines}\n{fields['SignedHeaders']}\n{hashlib.sha256(body).hexdigest()}"
    text = f"AMZN-PAY-RSASSA-PSS-V2\n{hashlib.sha256(canonical.encode()).hexdigest()}".encode()
    # THEN it verifies with the merchant's public key, PSS with a 32-byte salt, and names the key id
    assert (scheme, fields["PublicKeyId"], headers["x-amz-pay-date"]) == (
        "AMZN-PAY-RSASSA-PSS-V2",
        "SANDBOX-KEY",
        "20190923T231908Z",
    )
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    KEY.public_key().verify(base64.b64decode(fields["Signature"]), text, pss, hashes.SHA256())
    # AND another body does not
    with pytest.raises(InvalidSignature):
        KEY.public_key().verify(
            base64.b64decode(fields["Signature"]), text.replace(b"\n", b"\n ", 1), pss, hashes.SHA256()
        )


def test_our_refund_key_becomes_32_hex_digits_the_same_on_every_retry() -> None:
    ours = idempotency_key(derive_refund_id("test", "RMA-1"), "refund")
    sent = amazon_idempotency_key(ours)
    assert len(ours) > 32
    assert len(sent) == 32
    assert all(c in "0123456789abcdef" for c in sent)
    assert amazon_idempotency_key(ours) == sent
    assert amazon_idempotency_key(idempotency_key(derive_refund_id("test", "RMA-2"), "refund")) != sent


@settings(max_examples=25)
@given(key=st.text(alphabet="abcXYZ019_-", min_size=1, max_size=32))
def test_a_key_amazon_pay_takes_is_sent_as_it_is(key: str) -> None:
    assert amazon_idempotency_key(key) == key


def test_a_private_key_that_is_not_pem_rsa_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        load_private_key("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
