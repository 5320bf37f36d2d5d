"""Masking card numbers, e-mails and keys in logs (R16); verifying Standard Webhooks deliveries (R6, R7, R8)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from refundflow.connectors.standard_webhooks import verify_standard_webhook
from refundflow.errors import AuthenticationFailed, ConfigurationError
from refundflow.observability import logger, redact, redact_text

# ---------------------------------------------------------------- card numbers (Luhn)


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload`` + digit pass the Luhn check (independent of the code under test)."""
    total = 0
    for index, char in enumerate(reversed(payload)):
        value = int(char)
        if index % 2 == 0:  # doubled: the check digit will sit to the right
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def with_separators(number: str, separator: str) -> str:
    return separator.join(number[i : i + 4] for i in range(0, len(number), 4))


@pytest.mark.parametrize(
    "card",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "5555555555554444",
        "378282246310005",  # Amex, 15 digits
        "4222222222222",  # Visa, 13 digits
        "6011111111111117",
    ],
)
def test_luhn_valid_card_numbers_are_masked(card: str) -> None:
    # GIVEN a log line with a card number, plain or grouped with spaces or dashes
    line = f"customer paid with {card}, please refund"
    # WHEN redacted THEN only the last four digits remain
    redacted = redact_text(line)
    digits = re.sub(r"\D", "", card)
    assert f"[card ****{digits[-4:]}]" in redacted
    assert card not in redacted
    assert digits[:8] not in re.sub(r"\D", "", redacted)


# Issuer prefixes with a length their cards have (Visa 13/16/19, Amex 15, Diners 14, the rest 16-19).
ISSUED_LENGTHS = [
    ("4", 13),
    ("4", 16),
    ("4", 19),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("36", 14),
    ("3056", 14),
    ("6011", 16),
    ("65", 19),
    ("3528", 17),
    ("62", 18),
    ("50", 16),
    ("67", 19),
]


@given(
    issued=st.sampled_from(ISSUED_LENGTHS),
    digits=st.text(alphabet="0123456789", min_size=18, max_size=18),
    separator=st.sampled_from(["", " ", "-", "_", ".", "/", "\u00a0"]),
)
def test_every_luhn_valid_number_of_an_issuers_prefix_and_length_is_masked(
    issued: tuple[str, int], digits: str, separator: str
) -> None:
    # GIVEN any number with a card issuer's prefix and length that passes Luhn WHEN redacted THEN it does not survive
    issuer, length = issued
    payload = (issuer + digits)[: length - 1]
    card = payload + luhn_check_digit(payload)
    redacted = redact_text(f"pan={with_separators(card, separator)};")
    assert card not in re.sub(r"[ ._/\u00a0-]", "", redacted)
    assert f"****{card[-4:]}" in redacted


@given(payload=st.text(alphabet="0123456789", min_size=12, max_size=18), wrong=st.integers(1, 9))
def test_numbers_failing_luhn_are_left_alone(payload: str, wrong: int) -> None:
    # GIVEN an order or tracking number of card length that fails the Luhn check
    number = payload + str((int(luhn_check_digit(payload)) + wrong) % 10)
    line = f"order {number} shipped"
    # WHEN redacted THEN it is kept (support needs it)
    assert redact_text(line) == line


@pytest.mark.parametrize("number", ["4242424242424241", "1234567890123", "ORD-100200300400"])
def test_order_numbers_are_not_mistaken_for_cards(number: str) -> None:
    # GIVEN an order number that is no card number WHEN redacted THEN it stays readable
    assert redact_text(f"order {number}") == f"order {number}"


# ---------------------------------------------------------------- e-mails and keys


def test_email_addresses_keep_only_their_first_letter_and_domain() -> None:
    # GIVEN a line with two e-mail addresses
    line = "from jane.doe+returns@example.com to ops@shop.co.uk"
    # WHEN redacted THEN the local parts are masked
    redacted = redact_text(line)
    assert redacted == "from j***@example.com to o***@shop.co.uk"
    assert "jane.doe" not in redacted


# Made-up keys, assembled so that no live-looking key sits in the source (secret scanners).
LIVE = "sk_" + "live_"


@pytest.mark.parametrize(
    "secret",
    [
        "sk_test_51HxYzAbCdEfGhIjKlMnOpQr",
        LIVE + "51HxYzAbCdEfGhIjKlMnOpQr",
        "rk_" + LIVE[3:] + "51HxYzAbCdEf",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        # Standard Webhooks secrets are base64: "+", "/" and "=" are part of the secret
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD/PtXOMfi/mc=",
    ],
)
def test_api_keys_and_webhook_secrets_are_masked_completely(secret: str) -> None:
    # GIVEN a line that leaks a key
    line = f"calling with key={secret} now"
    # WHEN redacted THEN no part of the key's secret value remains
    redacted = redact_text(line)
    value = secret.split("_", 2)[-1]
    assert value not in redacted
    for fragment in re.split(r"[+/=]", value):
        if len(fragment) >= 4:
            assert fragment not in redacted, redacted
    assert redacted.startswith("calling with key=")
    assert redacted.endswith(" now")


def test_nested_log_documents_are_redacted() -> None:
    # GIVEN a structured log record with personal data deep inside
    record = {"customer": {"email": "jane@example.com"}, "cards": ["4242424242424242"], "amount": 1999}
    # WHEN redacted THEN every string is masked and other values are kept
    assert redact(record) == {"customer": {"email": "j***@example.com"}, "cards": ["[card ****4242]"], "amount": 1999}


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def test_the_shared_logger_writes_no_card_numbers_emails_or_keys(log_output: io.StringIO) -> None:
    # GIVEN the one refundflow logger
    # WHEN something careless is logged, in the message and in extra keys
    logger.warning(
        "refund for jane.doe@example.com paid with 4242 4242 4242 4242",
        extra={"api_key": LIVE + "51HxYzAbCdEfGhIjKlMn", "card": "5555-5555-5555-4444"},
    )
    # THEN what reaches the log has them masked (R16)
    written = log_output.getvalue()
    assert "jane.doe" not in written
    assert "4242 4242 4242 4242" not in written
    assert "5555-5555-5555-4444" not in written
    assert "51HxYzAbCdEf" not in written
    assert "[card ****4242]" in written
    assert "[card ****4444]" in written


# ---------------------------------------------------------------- Standard Webhooks


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


SECRET = new_secret()
OLD_SECRET = new_secret()
BODY = json.dumps({"payment": {"provider": "stripe", "payment_id": "pi_1"}, "reason": "damaged"}).encode()


def signed(
    body: bytes = BODY,
    *,
    secret: str = SECRET,
    msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    at: datetime | None = None,
) -> dict[str, str]:
    moment = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body.decode()),
    }


def rejection(
    headers: dict[str, str], body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,)
) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        verify_standard_webhook(headers, body, list(secrets))
    return caught.value


def test_a_valid_delivery_is_accepted_and_its_id_returned() -> None:
    # GIVEN a delivery signed with our secret WHEN verified THEN its webhook-id comes back
    assert verify_standard_webhook(signed(), BODY, [SECRET]) == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def test_header_names_are_case_insensitive() -> None:
    # GIVEN the same headers as a proxy might capitalise them WHEN verified THEN accepted
    headers = {key.title(): value for key, value in signed().items()}
    assert verify_standard_webhook(headers, BODY, [SECRET]) == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_a_flipped_body_byte_is_rejected(position: int) -> None:
    # GIVEN a valid delivery whose body was changed by one bit in transit
    forged = bytearray(BODY)
    forged[position] ^= 0x01
    # WHEN verified THEN it is rejected (R6)
    assert rejection(signed(), bytes(forged)).code == "signature_invalid"


def test_a_delivery_signed_with_another_secret_is_rejected() -> None:
    # GIVEN a delivery signed with a secret we do not hold WHEN verified THEN rejected (R6)
    assert rejection(signed(secret=new_secret())).code == "signature_invalid"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_delivery_missing_a_header_is_rejected(header: str) -> None:
    # GIVEN a valid delivery without one of its three headers (or with it empty)
    headers = signed()
    del headers[header]
    # WHEN verified THEN rejected as unsigned (R6)
    assert rejection(headers).code == "signature_missing"
    assert rejection({**headers, header: ""}).code == "signature_missing"


def test_an_emptied_body_is_rejected() -> None:
    # GIVEN the headers of a valid delivery with its body removed WHEN verified THEN rejected (R6)
    assert rejection(signed(), b"").code == "signature_invalid"


def test_a_hex_signature_instead_of_base64_is_rejected() -> None:
    # GIVEN the right HMAC, but hex-encoded where Standard Webhooks expects base64
    headers = signed()
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    message = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + BODY
    headers["webhook-signature"] = "v1," + hmac.new(key, message, hashlib.sha256).hexdigest()
    # WHEN verified THEN rejected (R6)
    assert rejection(headers).code == "signature_invalid"


@pytest.mark.parametrize("signature", ["v2,{sig}", "{sig}", "v1,", "v1 {sig}", "garbage"])
def test_malformed_signature_headers_are_rejected(signature: str) -> None:
    # GIVEN the right signature under another scheme version, or a mangled header
    headers = signed()
    real = headers["webhook-signature"].split(",", 1)[1]
    headers["webhook-signature"] = signature.format(sig=real)
    # WHEN verified THEN rejected, never an unexpected error
    assert rejection(headers).code in {"signature_invalid", "signature_missing"}


@pytest.mark.parametrize("offset", [timedelta(seconds=-301), timedelta(seconds=301), timedelta(days=-3)])
def test_a_timestamp_outside_five_minutes_either_way_is_rejected(offset: timedelta) -> None:
    # GIVEN a correctly signed delivery whose timestamp is 301 s old, 301 s ahead, or 3 days old (a replay)
    headers = signed(at=datetime.now(UTC) + offset)
    # WHEN verified THEN rejected for its timestamp (R7)
    assert rejection(headers).code == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("offset", [timedelta(seconds=-290), timedelta(seconds=290)])
def test_a_timestamp_within_five_minutes_either_way_is_accepted(offset: timedelta) -> None:
    # GIVEN a correctly signed delivery with a clock a little off WHEN verified THEN accepted
    assert verify_standard_webhook(signed(at=datetime.now(UTC) + offset), BODY, [SECRET])


def test_a_non_numeric_timestamp_is_rejected() -> None:
    # GIVEN a delivery with a timestamp that is not a number WHEN verified THEN rejected
    assert rejection({**signed(), "webhook-timestamp": "yesterday"}).code == "signature_invalid"


@pytest.mark.parametrize("signing_secret", [SECRET, OLD_SECRET], ids=["new", "old"])
def test_both_secrets_are_accepted_during_rotation(signing_secret: str) -> None:
    # GIVEN the new and the old secret configured while the sender rotates
    # WHEN a delivery signed with either arrives THEN it is accepted (R8)
    assert verify_standard_webhook(signed(secret=signing_secret), BODY, [SECRET, OLD_SECRET])


def test_a_delivery_carrying_old_and_new_signatures_is_accepted_with_only_the_new_secret() -> None:
    # GIVEN a sender that signs with both secrets during rotation, and only the new one configured
    old_signature = signed(secret=OLD_SECRET)["webhook-signature"]
    headers = signed()
    headers["webhook-signature"] = f"{old_signature} {headers['webhook-signature']}"
    # WHEN verified THEN accepted (R8)
    assert verify_standard_webhook(headers, BODY, [SECRET])


def test_a_retired_secret_is_rejected_after_rotation() -> None:
    # GIVEN rotation finished: only the new secret is configured
    # WHEN a delivery signed with the old one arrives THEN it is rejected
    assert rejection(signed(secret=OLD_SECRET), secrets=(SECRET,)).code == "signature_invalid"


def test_no_configured_secret_is_a_configuration_error() -> None:
    # GIVEN no secret configured WHEN a delivery arrives THEN it fails as misconfiguration, never accepted
    with pytest.raises(ConfigurationError):
        verify_standard_webhook(signed(), BODY, [])
