"""A standard-library check of ``POST /refund-requests`` bodies that vouches for the ordinary valid request.

The intake Lambda's cold import may not load pydantic or ``refundflow.models`` on the common path (issue 14).
:func:`vouch` answers what ``RefundRequestBody.model_validate(document).model_dump(mode="json", by_alias=True)``
would, without pydantic, when it is sure the model accepts the document; otherwise it answers None and the caller
asks the model (which says exactly what is wrong, for the 400).

It is sound, not complete: a dict is only returned for a document the model certainly accepts, equal to the
model's dump. Anything unusual is None: a type other than the exact JSON type (a bool or float for an int, a
numeric string, a tuple for a list, a str subclass), a field named by its name instead of its alias
(``return_info``), a key the model does not know, a datetime outside the strict form below, a string with a
lone surrogate, an integer outside 64 bits. Every rule of the model is mirrored here; the differential test
(tests/unit/core/test_request_check.py) checks that against the model, and the enum sets against its enums.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable
from typing import Any, TypeVar

from refundflow.iso4217 import CURRENCY_EXPONENTS

__all__ = [
    "BOOKS_SYSTEMS",
    "PAYMENT_PROVIDERS",
    "REFUND_REASONS",
    "RETURN_STATUSES",
    "TENDER_KINDS",
    "vouch",
]

# The values of the models' enums (a test keeps them equal to refundflow.models').
PAYMENT_PROVIDERS = frozenset(
    {
        "stripe",
        "paypal",
        "square",
        "amazon_pay",
        "adyen",
        "braintree",
        "klarna",
        "mollie",
        "chargebee",
        "shopify",
        "woocommerce",
    }
)
BOOKS_SYSTEMS = frozenset({"xero", "quickbooks", "netsuite", "sap", "dynamics", "dynamics_finance", "zoho_books"})
REFUND_REASONS = frozenset(
    {
        "product_return",
        "damaged",
        "wrong_item",
        "not_as_described",
        "not_received",
        "delivery_failed",
        "changed_mind",
        "duplicate_charge",
        "fraudulent",
        "goodwill",
        "other",
    }
)
RETURN_STATUSES = frozenset(
    {
        "not_required",
        "requested",
        "label_created",
        "in_transit",
        "received",
        "inspected",
        "closed",
        "delivery_failed",
    }
)
TENDER_KINDS = frozenset({"card", "wallet", "bank", "buy_now_pay_later", "gift_card", "store_credit", "other"})
# refundflow.domain.allocation.AllocationRule's names: intake checks a request's rule by name only (the model takes any
# name of the right shape; which rules the merchant allows is the policy's, decided at the parent's look-up).
ALLOCATION_RULE_NAMES = frozenset(
    {"last_captured_first", "proportional", "least_fee_first", "store_credit_last", "expression"}
)
STORE_CREDIT = "store_credit"

# The models' patterns, matched whole (re.fullmatch: no trailing newline slips through, as with pydantic's regex).
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:@+\-/#]{1,128}")
_LOCATOR_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ALLOCATION = re.compile(r"[a-z_]{1,40}")
_LOCALE = re.compile(r"[a-z]{2}(?:-[A-Z]{2})?")
# The one datetime form vouched for: 2026-11-25T08:30:00[.ffffff](Z|+HH:MM|-HH:MM).
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?"
    r"(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = 2**63 - 1
_QUANTITY = (1, 100_000)

_T = TypeVar("_T")


class _Unsure(Exception):
    """The checker cannot vouch for the document (the model may still accept it)."""


def vouch(document: dict[str, Any]) -> dict[str, Any] | None:
    """RefundRequestBody.model_validate(document).model_dump(mode="json", by_alias=True), computed without
    pydantic, when the document is certainly valid; None when this checker is not sure (the caller then asks
    the model, which gives the exact 400 problems)."""
    try:
        return _body(document)
    except _Unsure:
        return None


# ------------------------------------------------------------------ the body


def _body(document: Any) -> dict[str, Any]:
    data = _object(
        document,
        required={"reason", "customer", "source"},
        optional={
            "tenders",
            "payment",
            "allocation",
            "amount",
            "order",
            "invoice",
            "return",
            "lines",
            "note",
            "approved_by",
        },
    )
    tenders = _optional(data, "tenders", _tenders)
    payment = _optional(data, "payment", _payment_reference)
    if (payment is None) == (tenders is None):
        raise _Unsure  # exactly one of payment and tenders
    allocation = _optional(data, "allocation", lambda value: _pattern(value, _ALLOCATION))
    amount = _optional(data, "amount", _money)
    lines = _list(data.get("lines", []), _refund_line, max_length=200)
    _check_amounts(amount, lines)
    if tenders is not None:
        _check_tenders(tenders, amount, lines)
    elif allocation is not None:
        raise _Unsure  # allocation is for tenders only
    return {
        "tenders": tenders,
        "payment": payment,
        "allocation": allocation,
        "amount": amount,
        "reason": _choice(data["reason"], REFUND_REASONS),
        "customer": _customer(data["customer"]),
        "source": _source(data["source"]),
        "order": _optional(data, "order", _order),
        "invoice": _optional(data, "invoice", _invoice),
        "return": _optional(data, "return", _return_info),
        "lines": lines,
        "note": _optional(data, "note", lambda value: _text(value, 0, 1000)),
        "approved_by": _optional(data, "approved_by", _approver),
    }


def _check_amounts(amount: dict[str, Any] | None, lines: list[dict[str, Any]]) -> None:
    """refundflow.models._check_amounts: positive, one currency, lines adding up to the amount."""
    if amount is not None and amount["minor_units"] <= 0:
        raise _Unsure
    currencies = {line["amount"]["currency"] for line in lines}
    if amount is not None:
        currencies.add(amount["currency"])
    if len(currencies) > 1 or any(line["amount"]["minor_units"] <= 0 for line in lines):
        raise _Unsure
    if lines and amount is not None and sum(line["amount"]["minor_units"] for line in lines) != amount["minor_units"]:
        raise _Unsure


def _check_tenders(tenders: list[dict[str, Any]], amount: dict[str, Any] | None, lines: list[dict[str, Any]]) -> None:
    """RefundRequestBody._consistent_amounts with tenders: distinct payments (store credit at most once), a payment
    first, and a store-credit tender's paid in the refund's currency."""
    payments = [
        (tender["payment"]["provider"], tender["payment"]["payment_id"]) if tender["payment"] else (STORE_CREDIT, "")
        for tender in tenders
    ]
    if len(set(payments)) != len(payments) or tenders[0]["payment"] is None:
        raise _Unsure
    asked = amount["currency"] if amount is not None else (lines[0]["amount"]["currency"] if lines else None)
    if asked is not None and any(
        tender["paid"] is not None and tender["paid"]["currency"] != asked for tender in tenders
    ):
        raise _Unsure


# ------------------------------------------------------------------ the nested models


def _tenders(value: Any) -> list[dict[str, Any]]:
    return _list(value, _tender, min_length=2, max_length=8)


def _tender(value: Any) -> dict[str, Any]:
    """TenderRequest and _store_credit_or_payment."""
    data = _object(value, required=set(), optional={"payment", "kind", "paid"})
    payment = _optional(data, "payment", _payment_reference)
    kind = _choice(data.get("kind", "card"), TENDER_KINDS)
    paid = _optional(data, "paid", _money)
    if kind == STORE_CREDIT:
        if payment is not None or paid is None or paid["minor_units"] <= 0:
            raise _Unsure
    elif payment is None or paid is not None:
        raise _Unsure
    return {"payment": payment, "kind": kind, "paid": paid}


def _payment_reference(value: Any) -> dict[str, Any]:
    data = _object(value, required={"provider", "payment_id"}, optional={"locator"})
    locator = data.get("locator", {})
    if type(locator) is not dict or len(locator) > 8:
        raise _Unsure
    return {
        "provider": _choice(data["provider"], PAYMENT_PROVIDERS),
        "payment_id": _identifier(data["payment_id"]),
        "locator": {_pattern(key, _LOCATOR_KEY): _identifier(item) for key, item in locator.items()},
    }


def _money(value: Any) -> dict[str, Any]:
    data = _object(value, required={"minor_units", "currency"}, optional=set())
    currency = data["currency"]
    if type(currency) is not str or currency not in CURRENCY_EXPONENTS:
        raise _Unsure
    return {"minor_units": _integer(data["minor_units"], -_INT64, _INT64), "currency": currency}


def _customer(value: Any) -> dict[str, Any]:
    data = _object(value, required={"email"}, optional={"name", "customer_id", "locale"})
    return {
        "email": _email(data["email"]),
        "name": _optional(data, "name", _short_text),
        "customer_id": _optional(data, "customer_id", _identifier),
        "locale": _optional(data, "locale", lambda item: _pattern(item, _LOCALE)),
    }


def _source(value: Any) -> dict[str, Any]:
    data = _object(value, required={"system", "reference"}, optional={"ticket_id"})
    return {
        "system": _identifier(data["system"]),
        "reference": _identifier(data["reference"]),
        "ticket_id": _optional(data, "ticket_id", _identifier),
    }


def _order(value: Any) -> dict[str, Any]:
    data = _object(value, required={"order_id"}, optional={"platform", "placed_at", "delivered_at", "items"})
    return {
        "order_id": _identifier(data["order_id"]),
        "platform": _optional(data, "platform", _identifier),
        "placed_at": _optional(data, "placed_at", _aware_datetime),
        "delivered_at": _optional(data, "delivered_at", _aware_datetime),
        "items": _list(data.get("items", []), _order_item, max_length=500),
    }


def _order_item(value: Any) -> dict[str, Any]:
    data = _object(
        value, required={"sku", "quantity"}, optional={"description", "category", "unit_price", "final_sale"}
    )
    final_sale = data.get("final_sale", False)
    if type(final_sale) is not bool:
        raise _Unsure
    return {
        "sku": _identifier(data["sku"]),
        "description": _optional(data, "description", _short_text),
        "category": _optional(data, "category", _identifier),
        "quantity": _integer(data["quantity"], *_QUANTITY),
        "unit_price": _optional(data, "unit_price", _money),
        "final_sale": final_sale,
    }


def _invoice(value: Any) -> dict[str, Any]:
    data = _object(value, required={"system", "invoice_id"}, optional=set())
    return {"system": _choice(data["system"], BOOKS_SYSTEMS), "invoice_id": _identifier(data["invoice_id"])}


def _return_info(value: Any) -> dict[str, Any]:
    data = _object(value, required={"status"}, optional={"received_at", "tracking_reference"})
    return {
        "status": _choice(data["status"], RETURN_STATUSES),
        "received_at": _optional(data, "received_at", _aware_datetime),
        "tracking_reference": _optional(data, "tracking_reference", _identifier),
    }


def _refund_line(value: Any) -> dict[str, Any]:
    data = _object(value, required={"description", "amount"}, optional={"sku", "category", "quantity"})
    return {
        "description": _short_text(data["description"]),
        "sku": _optional(data, "sku", _identifier),
        "category": _optional(data, "category", _identifier),
        "quantity": _integer(data.get("quantity", 1), *_QUANTITY),
        "amount": _money(data["amount"]),
    }


def _approver(value: Any) -> dict[str, Any]:
    data = _object(value, required={"id", "role"}, optional={"name"})
    return {
        "id": _identifier(data["id"]),
        "role": _pattern(data["role"], _ROLE),
        "name": _optional(data, "name", _short_text),
    }


# ------------------------------------------------------------------ the field types


def _object(value: Any, *, required: set[str], optional: set[str]) -> dict[str, Any]:
    """A JSON object with every required key and no key the model does not know (extra="forbid")."""
    if type(value) is not dict:
        raise _Unsure
    keys = value.keys()
    if not required <= keys or not keys <= required | optional:
        raise _Unsure
    return value


def _optional(data: dict[str, Any], key: str, check: Callable[[Any], _T]) -> _T | None:
    """An optional field: absent or null is None (its default)."""
    value = data.get(key)
    return None if value is None else check(value)


def _list(value: Any, check: Callable[[Any], _T], *, min_length: int = 0, max_length: int) -> list[_T]:
    if type(value) is not list or not min_length <= len(value) <= max_length:
        raise _Unsure
    return [check(item) for item in value]


def _integer(value: Any, low: int, high: int) -> int:
    """An int, never a bool, a float or a numeric string."""
    if type(value) is not int or not low <= value <= high:
        raise _Unsure
    return value


def _text(value: Any, min_length: int, max_length: int) -> str:
    """A str whose length is counted as pydantic counts it (code points; no lone surrogates, which it refuses)."""
    if type(value) is not str or not min_length <= len(value) <= max_length or _SURROGATE.search(value):
        raise _Unsure
    return value


def _short_text(value: Any) -> str:
    return _text(value, 1, 256)


def _pattern(value: Any, pattern: re.Pattern[str]) -> str:
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise _Unsure
    return value


def _identifier(value: Any) -> str:
    return _pattern(value, _IDENTIFIER)


def _choice(value: Any, values: frozenset[str]) -> str:
    if type(value) is not str or value not in values:
        raise _Unsure
    return value


def _email(value: Any) -> str:
    """refundflow.models.Email: at most 254 characters, then _valid_email."""
    text = _text(value, 0, 254)
    local, _, domain = text.rpartition("@")
    if not local or "." not in domain or any(ch.isspace() for ch in text) or domain.startswith("."):
        raise _Unsure
    return text


def _aware_datetime(value: Any) -> str:
    """An AwareDatetime in the strict form YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM), answered as pydantic
    dumps it: microseconds as six digits and only when not zero, a zero offset as Z."""
    if type(value) is not str:
        raise _Unsure
    match = _DATETIME.fullmatch(value)
    if match is None:
        raise _Unsure
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction, zulu, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10, 11)
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= monthrange(year, month)[1]):
        raise _Unsure
    if hour > 23 or minute > 59 or second > 59:
        raise _Unsure
    microsecond = int(fraction.ljust(6, "0")) if fraction else 0
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if microsecond:
        text += f".{microsecond:06d}"
    if zulu:
        return text + "Z"
    hours, minutes = int(offset_hours), int(offset_minutes)
    if hours > 23 or minutes > 59:
        raise _Unsure
    return text + ("Z" if hours == minutes == 0 else f"{sign}{hours:02d}:{minutes:02d}")
