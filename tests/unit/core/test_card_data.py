"""Card data (PCI DSS 3.2.1-3.4): one check for every string, key and number of every inbound body, and the
same detector masking logs after they are serialised, with JWTs, bearer credentials and secrets."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from local.cfn import load_template
from refundflow import carddata, http_api
from refundflow.api import ApprovalRequestBody, RefundRequestBody
from refundflow.errors import InvalidRequest
from refundflow.observability import logger, redact_text
from tests.support.fakes import refund_request_body

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


# ---------------------------------------------------------------- the detector


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4242 123",
        "4242424242424242 123",
        "customer paid with 4242 4242 4242 4242 12/28 cvv 123",
        "4242_4242_4242_4242",
        "4242-4242-4242-4242",
        "4242.4242.4242.4242",
        "4242/4242/4242/4242",
        "4242\u00a04242\u00a04242\u00a04242",  # non-breaking spaces
        "4242\u20094242\u30004242\u202f4242",  # thin, ideographic and narrow spaces
        "4242\u200b4242\u200b4242\u200b4242",  # zero-width spaces
        "\uff14\uff12" * 8,  # fullwidth digits
        "5555 5555 5555 4444",
        "3782 822463 10005",
        "2223 0031 2200 3222",  # Mastercard 2-series
        "6011 1111 1111 1117",
        "3056 9309 0259 04",  # Diners, 14 digits
        "3566 0020 2036 0505",  # JCB
        "6200 0000 0000 0005",  # UnionPay
        "ref:4242424242424242",
    ],
)
def test_card_numbers_are_found_across_separators(text: str) -> None:
    # GIVEN a card number written the ways people paste them WHEN checked THEN it is found
    assert carddata.find_in_text(text) == "card_number"


@pytest.mark.parametrize("text", ["cvv 123", "CVV: 123", "cvc=1234", "CSC 999", "cid:1234", "card_cvv=123", "Cvv2 321"])
def test_security_codes_after_their_keyword_are_found(text: str) -> None:
    # GIVEN a card security code after its keyword (any case, ':' '=' ' ' between) WHEN checked THEN found
    assert carddata.find_in_text(text) == "card_security_code"


@pytest.mark.parametrize(
    "text",
    [
        "550e8400-e29b-41d4-a716-446655440000",  # UUID
        "2026-11-20T10:00:00Z",
        "2026-11-20 10:00:00+01:00",
        "20.11.2026 10.00.00",
        "+49 170 1234 5678",  # phone numbers
        "+1 (555) 123-4567",
        "1733400000000",  # a timestamp in milliseconds
        "ORD-100200300400",
        "RMA-2026-000123",
        "4242424242424241",  # a card's length, failing Luhn
        "1234567890123456",  # passing Luhn? no: and no issuer starts with 1
        "7992739871300000",
        "pi_3Q1w2e3r4t5y6u7i",
        "decided 123 days ago",
        "scid 1234",
    ],
)
def test_ordinary_ids_dates_and_phone_numbers_are_not_card_data(text: str) -> None:
    # GIVEN identifiers, dates and phone numbers a refund request carries WHEN checked THEN nothing is found
    assert carddata.find_in_text(text) is None


def test_a_number_passing_luhn_without_an_issuer_prefix_is_not_a_card() -> None:
    # GIVEN a Luhn-valid 16-digit number starting with 1 (no card issuer) and one starting with 4
    assert carddata.find_in_text("1000000000000008") is None
    # THEN only the one with an issuer prefix is a card number
    assert carddata.find_in_text("4000000000000002") == "card_number"


def luhn_completed(payload: str) -> str:
    """``payload`` with the check digit that makes it pass Luhn (independent of the code under test)."""
    for digit in "0123456789":
        number = payload + digit
        total = sum(
            (2 * int(char) - 9 if 2 * int(char) > 9 else 2 * int(char)) if index % 2 else int(char)
            for index, char in enumerate(reversed(number))
        )
        if total % 10 == 0:
            return number
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "payload",
    [
        "550000000000",  # 13 digits from 55: Mastercard numbers have 16
        "630000012345",  # 13 digits from 63 (Shopify-style order ids): Maestro's short numbers are left out
        "4000000000000",  # 14 digits from 4: Visa numbers have 13, 16 or 19
    ],
)
def test_a_luhn_valid_number_of_a_length_the_issuer_does_not_use_is_not_a_card(payload: str) -> None:
    # GIVEN a number with an issuer's prefix that passes Luhn but has another length WHEN checked THEN no card
    assert carddata.find_in_text(luhn_completed(payload)) is None


def test_the_same_prefixes_at_their_issuers_lengths_are_cards() -> None:
    # GIVEN numbers with those prefixes at their issuers' lengths (Mastercard 16, Maestro 16, Visa 13, Amex 15)
    for payload in ("550000000000000", "630000012345678", "400000000000", "37000000000000"):
        # WHEN checked THEN each is a card number
        assert carddata.find_in_text(luhn_completed(payload)) == "card_number", payload


def test_masking_keeps_the_last_four_digits_and_drops_what_follows() -> None:
    # GIVEN a card number followed by its expiry and code WHEN masked THEN only the last four digits remain
    masked = carddata.mask_text("paid with 4242 4242 4242 4242 12/28 cvv 123, thanks")
    assert masked == "paid with [card ****4242] [card security code], thanks"


# ---------------------------------------------------------------- every inbound field


def document(**changes: Any) -> dict[str, Any]:
    body = refund_request_body().model_dump(mode="json", by_alias=True, exclude_none=True)
    for path, value in changes.items():
        target = body
        parts = path.split("__")
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        target[parts[-1]] = value
    return body


def refused(model: type[BaseModel], body: dict[str, Any] | bytes) -> InvalidRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    with pytest.raises(InvalidRequest) as raised:
        http_api.parse_body(model, raw)
    return raised.value


def assert_card_refused(error: InvalidRequest, field: str, kind: str = "card_number") -> None:
    assert error.code == "card_data_refused"
    problems: list[dict[str, Any]] = error.errors  # type: ignore[attr-defined]
    assert {"field": field, "type": kind}.items() <= problems[0].items(), problems
    said = json.dumps([error.message, problems])
    assert not re.search(r"\d{4}[^0-9]?\d{4}", said), said


@pytest.mark.parametrize(
    ("field", "path", "value"),
    [
        ("note", "note", "4242 4242 4242 4242 123"),
        ("note", "note", "4242424242424242 123"),
        ("note", "note", "refund it: 4242 4242 4242 4242 12/28 cvv 123"),
        ("note", "note", "4242_4242_4242_4242"),
        ("source.reference", "source__reference", VISA),
        ("source.ticket_id", "source__ticket_id", "5555-5555-5555-4444"),
        ("source.system", "source__system", MASTERCARD),
        ("order.order_id", "order__order_id", VISA),
        ("customer.customer_id", "customer__customer_id", "4242_4242_4242_4242"),
        ("customer.name", "customer__name", f"Jane {AMEX}"),
        ("payment.payment_id", "payment__payment_id", VISA),
        ("invoice.invoice_id", "invoice__invoice_id", VISA),
    ],
)
def test_a_card_number_in_any_string_field_refuses_the_request(field: str, path: str, value: str) -> None:
    # GIVEN a refund request with a card number in one of its fields (most accepted it before)
    body = document(**{path: value})
    # WHEN parsed THEN it is refused naming the field, before the model ever sees it, and never echoed
    assert_card_refused(refused(RefundRequestBody, body), field)


def test_card_numbers_in_nested_lists_are_refused_with_their_path() -> None:
    # GIVEN a card number in an order item's sku, a line's description and an approver's id
    body = document(
        order__items=[{"sku": "DESK-1", "quantity": 1}, {"sku": VISA, "quantity": 1}],
        lines=[{"description": f"card {MASTERCARD}", "amount": {"minor_units": 2_500, "currency": "EUR"}}],
        approved_by={"id": "4242 4242 4242 4242", "role": "team_lead"},
    )
    # WHEN parsed THEN every field is named
    error = refused(RefundRequestBody, body)
    assert error.code == "card_data_refused"
    assert [problem["field"] for problem in error.errors] == [  # type: ignore[attr-defined]
        "approved_by.id",
        "lines.0.description",
        "order.items.1.sku",
    ]


def test_a_card_number_in_an_unknown_field_or_a_key_is_refused_as_card_data_not_as_a_typo() -> None:
    # GIVEN card data in a field the model does not know, and as an object key
    assert_card_refused(refused(RefundRequestBody, document(pan=VISA)), "pan")
    error = refused(RefundRequestBody, document(order__metadata={VISA: "x"}))
    # THEN both are card data; the key is reported at its object, without echoing it
    assert_card_refused(error, "order.metadata")
    assert error.errors[0]["problem"].startswith("a key")  # type: ignore[attr-defined]


def test_a_card_number_as_a_json_number_is_refused() -> None:
    # GIVEN a card number sent as a JSON number WHEN parsed THEN refused as card data
    assert_card_refused(refused(RefundRequestBody, document(order__order_id=int(VISA))), "order.order_id")


def test_a_security_code_split_into_key_and_value_is_refused() -> None:
    # GIVEN {"cvv": "123"} somewhere in the body WHEN parsed THEN refused as a security code
    error = refused(RefundRequestBody, document(customer__cvv="123"))
    assert_card_refused(error, "customer.cvv", "card_security_code")


def test_a_card_number_in_an_approval_note_is_refused() -> None:
    # GIVEN an approver's note with a card number in it WHEN parsed THEN refused naming the note
    error = refused(ApprovalRequestBody, {"decision": "approve", "note": "card 5555 5555 5555 4444 cvv 123"})
    assert_card_refused(error, "note")


def test_a_request_with_ordinary_ids_and_dates_passes_the_card_check() -> None:
    # GIVEN a request full of ids, dates and numbers that are not card data
    body = document(
        invoice__invoice_id="550e8400-e29b-41d4-a716-446655440000",
        order__delivered_at="2026-11-20T10:00:00Z",
        source__ticket_id="1733400000000",
        note="call +49 170 1234 5678 about ORD-100200300400",
    )
    # WHEN parsed THEN it is accepted
    parsed = http_api.parse_body(RefundRequestBody, json.dumps(body).encode())
    assert parsed.source.ticket_id == "1733400000000"


# ---------------------------------------------------------------- logs


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def logged(buffer: io.StringIO) -> dict[str, Any]:
    lines = buffer.getvalue().strip().splitlines()
    assert lines, "nothing was logged"
    record: dict[str, Any] = json.loads(lines[-1])  # still valid JSON after redaction
    return record


class Customer(BaseModel):
    email: str
    card: str


@dataclass
class Payment:
    reference: str


# Made-up credentials, assembled so that no live-looking key sits in the source (secret scanners).
LIVE = "sk_" + "live_"
JWT = "eyJhbGciOiJSUzI1NiJ9." + "eyJzdWIiOiJsZWUifQ." + "c2lnbmF0dXJlLWJ5dGVz"


def test_objects_passed_in_extra_are_redacted_after_serialisation(log_output: io.StringIO) -> None:
    # GIVEN a pydantic model, a dataclass and an exception carrying card data and an e-mail address
    logger.warning(
        "careless",
        extra={
            "customer": Customer(email="jane.doe@example.com", card="4242 4242 4242 4242"),
            "payment": Payment(reference="5555555555554444"),
            "error": ValueError("declined card 378282246310005 cvv 1234"),
            "pan": 4242424242424242,
        },
    )
    # WHEN written THEN none of it survives, and the line is still one valid JSON document
    written = log_output.getvalue()
    record = logged(log_output)
    for leaked in ("4242 4242 4242 4242", "5555555555554444", "378282246310005", "cvv 1234", "jane.doe", "42424242"):
        assert leaked not in written, written
    assert "[card ****4242]" in record["customer"]
    assert record["pan"] == "[card ****4242]"


@pytest.mark.parametrize(
    "secret",
    [
        JWT,
        f"Bearer {JWT}",
        "Bearer opaque-token_value.123",
        "Basic bGVlOmh1bnRlcjI=",
        LIVE + "51HxYzAbCdEfGhIjKlMn",
        "rk_" + LIVE[3:] + "51HxYzAbCdEfGhIj",
        "STRIPE_KEY_" + LIVE + "51HxYzAbCdEfGhIjKlMn",  # after "_" and other word characters
        "api_whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD/PtXOMfi/mc=",
        "sk_9f8e7d6c5b4a3f2e1d0c",
    ],
)
def test_tokens_bearer_credentials_and_keys_are_masked_in_text(secret: str) -> None:
    # GIVEN a log line leaking a credential WHEN redacted THEN its secret part is gone
    redacted = redact_text(f"calling with {secret} now")
    for fragment in ("eyJzdWIiOiJsZWUifQ", "c2lnbmF0dXJl", "51HxYzAbCdEf", "C2FVsBQIhrsc", "opaque-token", "bGVlOmh1"):
        assert fragment not in redacted, redacted
    assert "9f8e7d6c5b4a" not in redacted
    assert redacted.startswith("calling with ")
    assert redacted.endswith(" now")


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "secret",
        "authorization",
        "Authorization",
        "refresh_token",
        "client_secret",
        "api_key",
        "password",
        "signing_secrets",
        "webhook_secrets",
        "X-Api-Key",
        "task_token",
    ],
)
def test_values_under_secret_keys_are_masked_whatever_they_look_like(log_output: io.StringIO, key: str) -> None:
    # GIVEN a secret under a secret-named key, nested in extra, in any shape
    logger.warning("config", extra={"settings": {"xero": {key: "plain-looking-value-123"}, "other": [{key: ["a1"]}]}})
    # WHEN written THEN the values are masked and the document stays valid
    record = logged(log_output)
    assert record["settings"]["xero"][key] == "[redacted]"
    assert record["settings"]["other"][0][key] == "[redacted]"
    assert "plain-looking-value-123" not in log_output.getvalue()


def test_ordinary_keys_and_values_are_left_alone(log_output: io.StringIO) -> None:
    # GIVEN keys that only look a little like secret names, and ordinary ids
    extra = {"token_id": "jti-1", "idempotency_key": "rf_1:refund", "order": "ORD-100200300400", "amount": 2500}
    logger.warning("ordinary", extra=extra)
    # WHEN written THEN they are kept as they were
    record = logged(log_output)
    assert {key: record[key] for key in extra} == extra


def test_the_tracer_never_captures_responses() -> None:
    # GIVEN the template's global function environment
    template = load_template()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    # THEN responses (personal data) are not copied into X-Ray traces
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"


def test_a_platform_reason_is_stored_with_card_numbers_masked_and_bounded() -> None:
    # GIVEN a platform's refusal reason that quotes a card number and runs on
    from refundflow.money import Money
    from refundflow.ports import ProviderRefund, ProviderRefundStatus

    reason = "refused for card 4111 1111 1111 1111, cvc 123 " + "x" * 500
    # WHEN the connector turns it into refund news
    news = ProviderRefund(
        provider="adyen",
        provider_refund_id="QFQTPCQ8HXSKGK82",
        payment_id="PSP1",
        amount=Money.of(100, "EUR"),
        status=ProviderRefundStatus.FAILED,
        failure_reason=reason,
    )
    # THEN no card digits survive into what is stored and audited, and it fits a failure record
    assert news.failure_reason is not None
    assert "4111 1111 1111 1111" not in news.failure_reason
    assert "****1111" in news.failure_reason
    assert len(news.failure_reason) == 256


def _diners_shaped(seed: int) -> str:
    """14 digits with a Diners Club prefix that pass Luhn, derived from ``seed``."""
    body = [3, 6] + [int(digit) for digit in f"{seed:011d}"]
    for check in range(10):
        digits = [*body, check]
        total = sum(
            (value * 2 - 9 if value > 4 else value * 2) if index % 2 else value
            for index, value in enumerate(reversed(digits))
        )
        if total % 10 == 0:
            return "".join(str(value) for value in digits)
    raise AssertionError("unreachable")


def test_amazon_pay_object_ids_are_ids_even_when_their_digits_would_pass_as_a_card() -> None:
    # GIVEN Amazon Pay ids whose two 7-digit groups make a Luhn-valid, Diners-prefixed 14-digit number
    diners = _diners_shaped(1234567)
    permission = f"S01-{diners[:7]}-{diners[7:]}"
    assert carddata.find_in_text(diners) == "card_number"  # the same digits written whole are a card
    ids = [permission, f"{permission}-C056351", f"{permission}-R022311", f"B01-{diners[:7]}-{diners[7:]}"]
    # WHEN checked as values of a body
    # THEN none is card data, and the body is accepted
    assert [carddata.find_in_text(value) for value in ids] == [None, None, None, None]
    carddata.refuse_card_data({"payment": {"payment_id": ids[1]}, "note": f"see {ids[2]}."})


def test_a_card_next_to_an_amazon_pay_id_or_in_other_groupings_is_still_found() -> None:
    diners, visa = _diners_shaped(7654321), "4111111111111111"
    # GIVEN card numbers written in other groupings, or beside an Amazon Pay id
    texts = [
        f"{diners[:4]}-{diners[4:10]}-{diners[10:]}",  # Diners' own 4-6-4
        f"S01-{diners[:7]}-{diners[7:]}x{visa}",  # an id, then a card written on
        f"S01-5105180-3221187 card {visa}",
        f"s01-{visa[:8]}-{visa[8:]}",  # lower-case prefix: not an Amazon id
        f"01-{diners[:7]}-{diners[7:]}",  # no letter before the groups
    ]
    # WHEN checked THEN each is a card number
    assert [carddata.find_in_text(text) for text in texts] == ["card_number"] * len(texts)


def test_a_platforms_own_record_id_is_an_id_even_when_it_would_pass_for_a_visa_number() -> None:
    # GIVEN a Zoho-style 19-digit record id that is Luhn-valid with a Visa prefix (one in ten of some orgs' ids)
    record_id = "4876876000005996160"
    assert carddata.find_in_text(record_id) == "card_number"
    delivery = {"id": record_id, "module": "Deals", "note": "see record " + record_id}
    # WHEN the delivery is checked knowing that id is the desk's record
    # THEN the value equal to the id passes, and the same digits anywhere else (inside text) are still refused
    with pytest.raises(carddata_refused()) as refused:
        carddata.refuse_card_data(delivery, platform_ids={record_id})
    assert [item["field"] for item in refused.value.errors] == ["note"]
    carddata.refuse_card_data({"id": record_id, "module": "Deals"}, platform_ids={record_id})
    # AND without the exemption the id alone is refused
    with pytest.raises(carddata_refused()):
        carddata.refuse_card_data({"id": record_id})


def carddata_refused() -> type[Exception]:
    from refundflow.errors import CardDataRefused

    return CardDataRefused


def test_uuids_are_ids_even_when_their_groups_are_all_digits() -> None:
    # GIVEN a UUID whose first three groups are digits that make a Luhn-valid 16-digit Visa number
    digits = "4111111111111111"
    uuid_text = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-8f3a-0e3a7c1e9b2d"
    assert carddata.find_in_text(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}") == "card_number"
    # WHEN it is an invoice id (Xero's InvoiceID is a UUID) THEN it is an id, and the body is accepted
    assert carddata.find_in_text(uuid_text) is None
    assert carddata.find_in_text(uuid_text.upper()) is None
    carddata.refuse_card_data({"invoice": {"system": "xero", "invoice_id": uuid_text}})
    # AND a card written beside a UUID, or a UUID-like shape that is not one, is still found
    assert carddata.find_in_text(f"{uuid_text} {digits}") == "card_number"
    assert carddata.find_in_text(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-8f3a") == "card_number"
