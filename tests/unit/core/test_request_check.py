"""The intake's stdlib request check (refundflow.request_check, issue 14) against the model it stands in for.

Sound: whenever ``vouch`` answers a dict, ``RefundRequestBody`` accepts the document and dumps exactly that dict
(a differential property over valid documents and mutated ones). Useful: every ordinary valid request, the event
samples and the test factory's bodies are vouched for. No drift: its enum sets and currency table are the models'.
Cheap: importing it loads neither pydantic nor refundflow.models.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from refundflow import iso4217, money, request_check
from refundflow.models import (
    BooksSystem,
    PaymentProvider,
    RefundReason,
    RefundRequestBody,
    ReturnStatus,
    TenderKind,
)
from refundflow.request_check import vouch
from tests.support.fakes import refund_request_body

_T = TypeVar("_T")
ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
CURRENCIES = sorted(iso4217.CURRENCY_EXPONENTS)

# Deterministic (the same examples on every run) and without a deadline: the model's validator is built on first use.
DIFFERENTIAL = settings(
    max_examples=1200, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
USEFUL = settings(
    max_examples=200, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def same(left: Any, right: Any) -> bool:
    """Equal and of the same types all the way down (``True == 1`` and ``1 == 1.0`` for ``==``, not here)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def model_dump(document: Any) -> dict[str, Any] | None:
    """What the model answers: its JSON dump by alias, or None when it refuses the document."""
    try:
        body = RefundRequestBody.model_validate(document)
    except ValidationError:
        return None
    return body.model_dump(mode="json", by_alias=True)


def assert_sound(document: Any) -> dict[str, Any] | None:
    """vouch answers a dict only for a document the model accepts, and that dict is the model's dump."""
    before = copy.deepcopy(document)
    vouched = vouch(document)
    assert same(document, before), "vouch changed its input"
    dumped = model_dump(document)
    if dumped is None:
        assert vouched is None, f"vouched for a document the model refuses: {document!r}"
    elif vouched is not None:
        assert same(vouched, dumped), f"vouched {vouched!r}\nmodel   {dumped!r}"
    return vouched


# ------------------------------------------------------------------ valid documents

# Plain alphabets, not st.from_regex: the same strings, several times faster to draw.
LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
IDENTIFIER_CHARS = LOWER + LOWER.upper() + DIGITS + "_.:@+-/#"
identifiers = st.text(IDENTIFIER_CHARS, min_size=1, max_size=24)
short_texts = st.text(min_size=1, max_size=40)
locator_keys = st.builds(str.__add__, st.sampled_from(LOWER), st.text(LOWER + DIGITS + "_", max_size=12))
roles = st.builds(str.__add__, st.sampled_from(LOWER), st.text(LOWER + DIGITS + "_", max_size=15))
allocations = st.text(LOWER + "_", min_size=1, max_size=40)
emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(LOWER + DIGITS + "._+-", min_size=1, max_size=20),
    st.text(LOWER + DIGITS + "-", min_size=1, max_size=20),
    st.sampled_from(["com", "org", "de", "co.uk", "example"]),
)
locales = st.builds(
    str.__add__,
    st.text(LOWER, min_size=2, max_size=2),
    st.just("") | st.text(LOWER.upper(), min_size=2, max_size=2).map("-".__add__),
)
quantities = st.integers(min_value=1, max_value=100_000)
amounts = st.integers(min_value=1, max_value=10**9)


@st.composite
def datetime_texts(draw: st.DrawFn) -> str:
    """An aware datetime as a client writes it: Z or an offset, with or without a fraction of a second."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    digits = draw(st.integers(min_value=0, max_value=6))
    fraction = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
    offset = draw(
        st.sampled_from(["Z", "+00:00", "-00:00", "+01:00", "-05:00", "+05:30"])
        | st.builds(
            lambda sign, hours, minutes: f"{sign}{hours:02d}:{minutes:02d}",
            st.sampled_from("+-"),
            st.integers(min_value=0, max_value=23),
            st.integers(min_value=0, max_value=59),
        )
    )
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}{offset}"
    )


def money_of(minor_units: int, currency: str) -> dict[str, Any]:
    return {"minor_units": minor_units, "currency": currency}


def put(draw: st.DrawFn, data: dict[str, Any], key: str, values: st.SearchStrategy[Any]) -> None:
    """An optional field: left out, null, or a value."""
    choice = draw(st.sampled_from(["absent", "null", "value"]))
    if choice == "null":
        data[key] = None
    elif choice == "value":
        data[key] = draw(values)


@st.composite
def payments(draw: st.DrawFn, provider: str | None = None, payment_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "provider": provider or draw(st.sampled_from(sorted(request_check.PAYMENT_PROVIDERS))),
        "payment_id": payment_id or draw(identifiers),
    }
    if draw(st.booleans()):
        data["locator"] = draw(st.dictionaries(locator_keys, identifiers, max_size=3))
    return data


@st.composite
def tender_lists(draw: st.DrawFn, currency: str) -> list[dict[str, Any]]:
    """2-8 tenders: distinct payments, a payment first, store credit at most once (paid in the refund's currency)."""
    named = draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(request_check.PAYMENT_PROVIDERS)), identifiers),
            min_size=2,
            max_size=8,
            unique=True,
        )
    )
    kinds = sorted(request_check.TENDER_KINDS - {"store_credit"})
    tenders: list[dict[str, Any]] = []
    for provider, payment_id in named:
        tender: dict[str, Any] = {"payment": draw(payments(provider, payment_id))}
        if draw(st.booleans()):
            tender["kind"] = draw(st.sampled_from(kinds))  # left out: card (kind is not nullable)
        if draw(st.booleans()):
            tender["paid"] = None
        tenders.append(tender)
    if draw(st.booleans()):
        credit: dict[str, Any] = {"kind": "store_credit", "paid": money_of(draw(amounts), currency)}
        if draw(st.booleans()):
            credit["payment"] = None
        tenders[draw(st.integers(min_value=1, max_value=len(tenders) - 1))] = credit
    return tenders


@st.composite
def order_items(draw: st.DrawFn, currency: str) -> dict[str, Any]:
    item: dict[str, Any] = {"sku": draw(identifiers), "quantity": draw(quantities)}
    put(draw, item, "description", short_texts)
    put(draw, item, "category", identifiers)
    put(
        draw,
        item,
        "unit_price",
        st.builds(money_of, st.integers(min_value=-(10**9), max_value=10**9), st.just(currency)),
    )
    if draw(st.booleans()):
        item["final_sale"] = draw(st.booleans())
    return item


@st.composite
def orders(draw: st.DrawFn, currency: str) -> dict[str, Any]:
    order: dict[str, Any] = {"order_id": draw(identifiers)}
    put(draw, order, "platform", identifiers)
    put(draw, order, "placed_at", datetime_texts())
    put(draw, order, "delivered_at", datetime_texts())
    if draw(st.booleans()):
        order["items"] = draw(st.lists(order_items(currency), max_size=4))
    return order


@st.composite
def refund_lines(draw: st.DrawFn, currency: str) -> dict[str, Any]:
    line: dict[str, Any] = {"description": draw(short_texts), "amount": money_of(draw(amounts), currency)}
    put(draw, line, "sku", identifiers)
    put(draw, line, "category", identifiers)
    if draw(st.booleans()):
        line["quantity"] = draw(quantities)
    return line


@st.composite
def customers(draw: st.DrawFn) -> dict[str, Any]:
    customer: dict[str, Any] = {"email": draw(emails)}
    put(draw, customer, "name", short_texts)
    put(draw, customer, "customer_id", identifiers)
    put(draw, customer, "locale", locales)
    return customer


@st.composite
def sources(draw: st.DrawFn) -> dict[str, Any]:
    source: dict[str, Any] = {"system": draw(identifiers), "reference": draw(identifiers)}
    put(draw, source, "ticket_id", identifiers)
    return source


@st.composite
def return_infos(draw: st.DrawFn) -> dict[str, Any]:
    info: dict[str, Any] = {"status": draw(st.sampled_from(sorted(request_check.RETURN_STATUSES)))}
    put(draw, info, "received_at", datetime_texts())
    put(draw, info, "tracking_reference", identifiers)
    return info


@st.composite
def approvers(draw: st.DrawFn) -> dict[str, Any]:
    approver: dict[str, Any] = {"id": draw(identifiers), "role": draw(roles)}
    put(draw, approver, "name", short_texts)
    return approver


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """An ordinary valid request: one payment or split tenders, with or without lines (adding up to the amount),
    an order with items and datetimes, an invoice, a return, who approved it, a note."""
    currency = draw(st.sampled_from(["EUR", "USD", "JPY", "KWD"]) | st.sampled_from(CURRENCIES))
    document: dict[str, Any] = {
        "reason": draw(st.sampled_from(sorted(request_check.REFUND_REASONS))),
        "customer": draw(customers()),
        "source": draw(sources()),
    }
    if draw(st.booleans()):
        document["tenders"] = draw(tender_lists(currency))
        put(draw, document, "allocation", allocations)
        if draw(st.booleans()):
            document["payment"] = None
    else:
        document["payment"] = draw(payments())
        if draw(st.booleans()):
            document["tenders"] = None
    lines: list[dict[str, Any]] = draw(st.lists(refund_lines(currency), max_size=4))
    send_lines: bool = bool(lines) or draw(st.booleans())  # no lines: sent as [] or left out
    if send_lines:
        document["lines"] = lines
    if lines:
        if draw(st.booleans()):
            document["amount"] = money_of(sum(line["amount"]["minor_units"] for line in lines), currency)
    else:
        put(draw, document, "amount", st.builds(money_of, amounts, st.just(currency)))
    put(draw, document, "order", orders(currency))
    put(
        draw,
        document,
        "invoice",
        st.fixed_dictionaries(
            {"system": st.sampled_from(sorted(request_check.BOOKS_SYSTEMS)), "invoice_id": identifiers}
        ),
    )
    put(draw, document, "return", return_infos())
    put(draw, document, "note", st.text(max_size=60))
    put(draw, document, "approved_by", approvers())
    return document


# ------------------------------------------------------------------ documents near the schema (mostly invalid)

KNOWN_KEYS = sorted(
    {
        "tenders", "payment", "allocation", "amount", "reason", "customer", "source", "order", "invoice", "return",
        "return_info", "lines", "note", "approved_by", "provider", "payment_id", "locator", "kind", "paid",
        "minor_units", "currency", "email", "name", "customer_id", "locale", "system", "reference", "ticket_id",
        "order_id", "platform", "placed_at", "delivered_at", "items", "sku", "description", "category", "quantity",
        "unit_price", "final_sale", "invoice_id", "status", "received_at", "tracking_reference", "id", "role",
        "approved", "refundable", "extra",
    }
)  # fmt: skip
ODD_DATETIMES = [
    "2026-11-25T08:30:00Z\n",
    "2026-11-25T08:30:00",
    "2026-11-25",
    "2026-11-25T08:30Z",
    "2026-11-25t08:30:00z",
    "2026-11-25 08:30:00Z",
    "2026-11-25T08:30:00+0100",
    "2026-11-25T08:30:00+01",
    "2026-11-25T08:30:00+24:00",
    "2026-11-25T08:30:00-00:00",
    "2026-11-25T08:30:00.1234567Z",
    "2026-11-25T08:30:00,5Z",
    "2026-11-25T08:30:00.Z",
    "2026-11-25T08:30:60Z",
    "2026-11-25T24:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "2026-13-01T00:00:00Z",
    "2026-11-25T08:30:00.000000Z",
    "2026-11-25T08:30:00.000001+00:00",
    "202\uff16-11-25T08:30:00Z",
    "2026-11-25T08:30:00\u00a0Z",
    " 2026-11-25T08:30:00Z",
    "1764059400",
]


# Datetimes put together from odd parts: out-of-range fields, other separators, offsets pydantic reads or refuses.
fuzzy_datetimes = st.builds(
    "{}-{}-{}{}{}:{}:{}{}{}{}".format,
    st.sampled_from(["0000", "0001", "1970", "2024", "2026", "9999", "99999", "202", "\uff12\uff10\uff12\uff16"]),
    st.sampled_from(["00", "01", "02", "04", "12", "13", "1"]),
    st.sampled_from(["00", "01", "28", "29", "30", "31", "32", "1"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["00", "07", "23", "24", "7"]),
    st.sampled_from(["00", "30", "59", "60"]),
    st.sampled_from(["00", "59", "60", "61", "5"]),
    st.sampled_from(["", ".", ".0", ".5", ".000000", ".000001", ".999999", ".1234567", ",5"]),
    st.sampled_from(
        ["Z", "z", "", "+00:00", "-00:00", "+0000", "+01:00", "+23:59", "+24:00", "-23:59", "+01", "+1:00", "+01:60"]
    ),
    st.sampled_from(["", "", "", "\n", " "]),
)


ODD_EMAILS = [
    "a@b.c",
    "a@b",
    "@b.c",
    "a@.b.c",
    "a@b.",
    "a b@c.d",
    "a@b.c\n",
    "a@b.c ",
    "a@b\u2003.c",
    "a@b@c.d",
    "@@b.c",
    "a@",
    "",
    "x" * 249 + "@b.co",
    "x" * 250 + "@b.co",
    "\U0001f600" * 249 + "@b.co",
    "a@b.c\ud800",
]


# The ones of ODD_DATETIMES in the strict form that vouch takes (the others are left to the model).
STRICT_DATETIMES = {
    "2026-11-25T08:30:00-00:00",
    "2026-11-25T08:30:00.000000Z",
    "2026-11-25T08:30:00.000001+00:00",
    "2024-02-29T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
}


def odd_values(value: Any) -> st.SearchStrategy[Any]:
    """Values a careless or hostile client sends in place of ``value``: lax coercions pydantic would make, length
    and range boundaries, trailing newlines, odd datetimes, wrong types."""
    general = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 1, 100_000, 100_001, 2**63 - 1, 2**63, -(2**63)]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-5, max_value=100_001).map(str),
        st.text(max_size=10),
        st.sampled_from(ODD_DATETIMES),
        fuzzy_datetimes,
        st.sampled_from(
            sorted(
                request_check.PAYMENT_PROVIDERS
                | request_check.BOOKS_SYSTEMS
                | request_check.REFUND_REASONS
                | request_check.RETURN_STATUSES
                | request_check.TENDER_KINDS
            )
        ),
        st.sampled_from(["STRIPE", "Card", "eur", "EUR ", "XXX", "EURO", "store_credit"]),
        st.sampled_from(CURRENCIES),
        st.sampled_from(ODD_EMAILS),
        st.just([]),
        st.just({}),
        st.just(()),
    )
    if type(value) is str:
        return st.one_of(
            general,
            st.sampled_from(["\n", " ", "\t", "\u00a0", "é", "\ud800", "#", "/", "@", "\u0661", "\x00"]).map(
                lambda tail: value + tail
            ),
            st.sampled_from([127, 128, 129, 253, 254, 255, 256, 257, 999, 1000, 1001]).map(lambda size: "a" * size),
            st.sampled_from([1, 128, 256, 1000]).map(lambda size: "\U0001f600" * size),
            st.just(value.upper()),
            st.just(value.encode(errors="surrogatepass")),
        )
    if type(value) is int:
        return st.one_of(general, st.sampled_from([-1, 1]).map(lambda step: value + step), st.just(float(value)))
    if type(value) is list:
        return st.one_of(general, st.just(tuple(value)), st.just(value + value), st.just(value[:1]))
    return general


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document: the keys of its objects and the indexes of its lists, all the way down."""
    found = [prefix]
    if type(value) is dict:
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif type(value) is list:
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def at(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def anywhere(draw: st.DrawFn, places: list[_T]) -> _T:
    """One of the places (or changes), evenly: st.sampled_from favours the first ones (the top-level keys)."""
    return places[draw(st.integers(min_value=0, max_value=2**32 - 1)) % len(places)]


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """One change somewhere in the document: a value replaced by an odd one, a key removed or added."""
    document = copy.deepcopy(document)
    path = anywhere(draw, paths(document))
    target = at(document, path)
    action = anywhere(draw, ["replace", "replace", "replace", "delete", "add"])
    if action == "add" and type(target) is dict:
        target[draw(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8))] = draw(
            odd_values(None) | st.just(copy.deepcopy(target))
        )
    elif action == "delete" and path and type(at(document, path[:-1])) is dict:
        del at(document, path[:-1])[path[-1]]
    elif path:
        at(document, path[:-1])[path[-1]] = draw(odd_values(target))
    else:
        return draw(odd_values(document))  # type: ignore[no-any-return,unused-ignore]
    return document


def _currency_swap(document: dict[str, Any], draw: st.DrawFn) -> None:
    moneys = [path for path in paths(document) if path and path[-1] == "currency"]
    if moneys:
        path = anywhere(draw, moneys)
        at(document, path[:-1])["currency"] = draw(st.sampled_from(["EUR", "USD", "JPY"]))


def _amount_bump(document: dict[str, Any], draw: st.DrawFn) -> None:
    units = [path for path in paths(document) if path and path[-1] == "minor_units"]
    if units:
        path = anywhere(draw, units)
        at(document, path[:-1])["minor_units"] += draw(st.sampled_from([-1, 1, -(10**9)]))


def _both(document: dict[str, Any], draw: st.DrawFn) -> None:
    if document.get("tenders"):
        document["payment"] = document["tenders"][0]["payment"]
    elif document.get("payment"):
        document["tenders"] = [{"payment": document["payment"]}, {"payment": draw(payments())}]


def _neither(document: dict[str, Any], draw: st.DrawFn) -> None:
    document.pop(draw(st.sampled_from(["payment", "tenders"])), None)
    document.pop("payment" if "tenders" not in document else "tenders", None)


def _tender_shuffle(document: dict[str, Any], draw: st.DrawFn) -> None:
    tenders = document.get("tenders")
    if tenders:
        choice = anywhere(draw, ["duplicate", "credit_first", "second_credit", "reverse", "one", "nine"])
        credit = {"kind": "store_credit", "paid": {"minor_units": 100, "currency": "EUR"}}
        if choice == "duplicate":
            tenders.append(copy.deepcopy(tenders[0]))
        elif choice == "credit_first":
            tenders.insert(0, credit)
        elif choice == "second_credit":
            tenders.extend([credit, copy.deepcopy(credit)])
        elif choice == "reverse":
            tenders.reverse()
        elif choice == "one":
            del tenders[1:]
        else:
            tenders.extend({"payment": {"provider": "stripe", "payment_id": f"pi_x{index}"}} for index in range(9))
    else:
        document["allocation"] = "proportional"


def _rename_return(document: dict[str, Any], draw: st.DrawFn) -> None:
    if "return" in document:
        document["return_info"] = document.pop("return")


def _string_tail(document: dict[str, Any], draw: st.DrawFn) -> None:
    """A trailing newline (Python's ``$`` would let it through, pydantic's regex does not), a space, a surrogate."""
    strings = [path for path in paths(document) if path and type(at(document, path)) is str]
    path = anywhere(draw, strings)
    tail = draw(st.sampled_from(["\n", "\r\n", " ", "\u00a0", "\ud800", "\u0661"]))
    at(document, path[:-1])[path[-1]] += tail


def _lax_number(document: dict[str, Any], draw: st.DrawFn) -> None:
    """An int as pydantic's lax mode takes it (or not): a bool, a float, a numeric string."""
    numbers = [path for path in paths(document) if path and type(at(document, path)) is int]
    if numbers:
        path = anywhere(draw, numbers)
        value = at(document, path)
        at(document, path[:-1])[path[-1]] = draw(st.sampled_from([True, False, float(value), str(value)]))


def _odd_email(document: dict[str, Any], draw: st.DrawFn) -> None:
    document["customer"]["email"] = anywhere(draw, ODD_EMAILS)


STRUCTURAL: list[Callable[[dict[str, Any], st.DrawFn], None]] = [
    _odd_email,
    _string_tail,
    _lax_number,
    _currency_swap,
    _amount_bump,
    _both,
    _neither,
    _tender_shuffle,
    _rename_return,
]


@st.composite
def near_documents(draw: st.DrawFn) -> Any:
    """A valid document with one to three changes (a structural one first, on the still valid document, then
    changes anywhere): mostly invalid, some still valid, some valid only through pydantic's lax coercions."""
    document: Any = draw(valid_documents())
    structural = draw(st.booleans())
    if structural:
        anywhere(draw, STRUCTURAL)(document, draw)
    for _ in range(draw(st.integers(min_value=0 if structural else 1, max_value=2))):
        if type(document) is not dict:
            break
        document = draw(mutated(document))
    return document


# ------------------------------------------------------------------ soundness


@DIFFERENTIAL
@given(near_documents())
def test_vouch_answers_only_what_the_model_accepts_and_dumps(document: Any) -> None:
    # GIVEN a document near the schema WHEN vouched for THEN only a document the model accepts, as it dumps it
    assert_sound(document)


@USEFUL
@given(valid_documents())
def test_every_ordinary_valid_request_is_vouched_for_as_the_model_dumps_it(document: dict[str, Any]) -> None:
    # GIVEN an ordinary valid request WHEN vouched for THEN it is, exactly as the model dumps it
    assert model_dump(document) is not None, "the strategy made an invalid document"
    assert assert_sound(document) is not None


@USEFUL
@given(valid_documents())
def test_the_models_own_dump_is_vouched_for_as_itself(document: dict[str, Any]) -> None:
    # GIVEN what the model dumps for a valid request (every default and null spelled out) WHEN vouched THEN itself
    dumped = model_dump(document)
    assert dumped is not None
    vouched = vouch(dumped)
    assert vouched is not None
    assert same(vouched, dumped)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(amount={"minor_units": True, "currency": "EUR"}), "a bool for an int"),
        (lambda d: d.update(amount={"minor_units": "2500", "currency": "EUR"}), "a numeric string"),
        (lambda d: d.update(amount={"minor_units": 2500.0, "currency": "EUR"}), "a float"),
        (lambda d: d["source"].update(reference="RMA-1\n"), "a trailing newline"),
        (lambda d: d["source"].update(reference="R" * 129), "an identifier too long"),
        (lambda d: d["customer"].update(email="x" * 250 + "@b.co"), "an e-mail longer than 254"),
        (lambda d: d["customer"].update(email="jane doe@example.com"), "a space in an e-mail"),
        (lambda d: d.update(order={"order_id": "O-1", "placed_at": "2026-11-25T08:30:00"}), "a naive datetime"),
        (lambda d: d.update(order={"order_id": "O-1", "placed_at": "2026-11-25 08:30:00Z"}), "a space in a datetime"),
        (lambda d: d.update(tenders=[{"payment": d["payment"]}, {"payment": d["payment"]}]), "payment and tenders"),
        (lambda d: d.update(allocation="proportional"), "allocation without tenders"),
        (lambda d: d.update(lines=[{"description": "x", "amount": {"minor_units": 1, "currency": "EUR"}}]), "lines"),
        (lambda d: d.update(lines=[{"description": "x", "amount": {"minor_units": 2500, "currency": "USD"}}]), "FX"),
        (lambda d: d.update(surprise=1), "an unknown key"),
        (lambda d: d.update(return_info={"status": "received"}), "a field by its name, not its alias"),
        (lambda d: d.pop("reason"), "a missing field"),
    ],
)
def test_unusual_documents_are_left_to_the_model(change: Callable[[dict[str, Any]], Any], reason: str) -> None:
    # GIVEN a valid request changed in one unusual way WHEN vouched THEN None (the model decides and explains)
    document = valid_document()
    assert vouch(document) is not None
    change(document)
    assert vouch(document) is None, reason
    assert_sound(document)


def split_document() -> dict[str, Any]:
    """A valid split-tender request: a card, a wallet and store credit, 25.00 EUR in two lines."""
    document = valid_document(
        tenders=[
            {"payment": {"provider": "stripe", "payment_id": "pi_1"}},
            {"payment": {"provider": "paypal", "payment_id": "CAP-2"}, "kind": "wallet"},
            {"kind": "store_credit", "paid": {"minor_units": 1000, "currency": "EUR"}},
        ],
        allocation="proportional",
        lines=[
            {"description": "Lamp", "amount": {"minor_units": 2000, "currency": "EUR"}},
            {"description": "Bulb", "quantity": 2, "amount": {"minor_units": 500, "currency": "EUR"}},
        ],
    )
    del document["payment"]
    return document


def setter(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def tenders(*items: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return setter("tenders", value=list(items))


CARD = {"payment": {"provider": "stripe", "payment_id": "pi_1"}}
WALLET = {"payment": {"provider": "paypal", "payment_id": "CAP-2"}, "kind": "wallet"}
CREDIT = {"kind": "store_credit", "paid": {"minor_units": 1000, "currency": "EUR"}}
ITEM = {"sku": "S-1", "quantity": 1}
LINE = {"description": "x", "amount": {"minor_units": 1, "currency": "EUR"}}


@pytest.mark.parametrize(
    ("change", "vouched"),
    [
        # lengths at and beyond each limit, as pydantic counts them (code points)
        (setter("customer", "name", value="a" * 256), True),
        (setter("customer", "name", value="a" * 257), False),
        (setter("customer", "name", value="\U0001f600" * 256), True),
        (setter("customer", "name", value=""), False),
        (setter("customer", "name", value="Jane\ud800"), False),
        (setter("customer", "name", value="Jane\n"), True),
        (setter("note", value=""), True),
        (setter("note", value="n" * 1000), True),
        (setter("note", value="n" * 1001), False),
        (setter("source", "reference", value="R" * 128), True),
        (setter("source", "reference", value="R" * 129), False),
        (setter("source", "reference", value=""), False),
        (setter("customer", "email", value="j" * 248 + "@ex.co"), True),
        (setter("customer", "email", value="j" * 249 + "@ex.co"), False),
        (setter("customer", "email", value="jane@.example.com"), False),
        (setter("customer", "email", value="jane@example"), False),
        (setter("customer", "email", value="jane@example.com\u2003"), False),
        (setter("customer", "locale", value="en-GB"), True),
        (setter("customer", "locale", value="en-gb"), False),
        (setter("customer", "locale", value="EN-GB"), False),
        (setter("customer", "locale", value="en"), True),
        (setter("customer", "locale", value="eng"), False),
        (setter("customer", "locale", value="en\n"), False),
        (setter("approved_by", value={"id": "lead-1", "role": "team_lead"}), True),
        (setter("approved_by", value={"id": "lead-1", "role": "Team_lead"}), False),
        (setter("approved_by", value={"id": "lead-1", "role": "team_Lead"}), False),
        (setter("approved_by", value={"id": "lead-1", "role": "team-lead"}), False),
        (setter("approved_by", value={"id": "lead-1", "role": "1lead"}), False),
        (setter("approved_by", value={"id": "lead-1", "role": "l" * 40}), True),
        (setter("approved_by", value={"id": "lead-1", "role": "l" * 41}), False),
        # counts
        (setter("payment", "locator", value={f"k{index}": "v" for index in range(8)}), True),
        (setter("payment", "locator", value={f"k{index}": "v" for index in range(9)}), False),
        (setter("payment", "locator", value={"Kind": "sale"}), False),
        (setter("order", "items", value=[ITEM] * 500), True),
        (setter("order", "items", value=[ITEM] * 501), False),
        (setter("order", "items", value=None), False),
        (setter("order", "items", value=[{**ITEM, "final_sale": 1}]), False),
        (setter("order", "items", value=[{**ITEM, "quantity": 100_001}]), False),
        (setter("order", "items", value=[{**ITEM, "unit_price": {"minor_units": -5, "currency": "JPY"}}]), True),
        (setter("lines", value=[LINE] * 200), False),  # 200 minor units, amount 2500
        (setter("amount", value={"minor_units": 200, "currency": "EUR"}), True),
        (lambda document: document.update(lines=[LINE] * 200, amount=None), True),
        (lambda document: document.update(lines=[LINE] * 201, amount=None), False),
        (lambda document: document.update(lines=[{**LINE, "amount": {"minor_units": 0, "currency": "EUR"}}]), False),
        (
            lambda document: document.update(
                lines=[{**LINE, "amount": {"minor_units": 0, "currency": "EUR"}}, LINE], amount=None
            ),
            False,
        ),
        (
            lambda document: document.update(
                lines=[{**LINE, "amount": {"minor_units": -1, "currency": "EUR"}}, {**LINE, "quantity": 2}], amount=None
            ),
            False,
        ),
        (setter("amount", value={"minor_units": 0, "currency": "EUR"}), False),
        (setter("amount", value={"minor_units": 2**63, "currency": "EUR"}), False),  # the model takes it; we pass
        (setter("amount", value={"minor_units": 2500, "currency": "eur"}), False),
    ],
)
def test_limits_are_the_models(change: Callable[[dict[str, Any]], None], vouched: bool) -> None:
    # GIVEN a valid request at or beyond one of the model's limits WHEN vouched THEN as the model decides
    document = valid_document()
    change(document)
    assert (assert_sound(document) is not None) is vouched


@pytest.mark.parametrize(
    ("change", "vouched"),
    [
        (lambda document: None, True),
        (tenders(CARD, WALLET), True),
        (tenders(CARD, CREDIT), True),
        (tenders(CREDIT, CARD), False),  # the first tender is a payment
        (tenders(CARD, CARD), False),  # distinct payments
        (tenders(CARD, CREDIT, CREDIT), False),  # store credit at most once
        (tenders(CARD), False),
        (tenders(*[{"payment": {"provider": "stripe", "payment_id": f"pi_{index}"}} for index in range(8)]), True),
        (tenders(*[{"payment": {"provider": "stripe", "payment_id": f"pi_{index}"}} for index in range(9)]), False),
        (tenders(CARD, {**CREDIT, "paid": {"minor_units": 1000, "currency": "USD"}}), False),  # the refund's currency
        (tenders(CARD, {**CREDIT, "paid": {"minor_units": 0, "currency": "EUR"}}), False),
        (tenders(CARD, {**CREDIT, "payment": {"provider": "stripe", "payment_id": "pi_9"}}), False),
        (tenders(CARD, {"kind": "store_credit"}), False),
        (tenders(CARD, {**WALLET, "paid": {"minor_units": 1, "currency": "EUR"}}), False),
        (tenders(CARD, {"kind": "gift_card"}), False),
        (tenders(CARD, {**WALLET, "kind": None}), False),
        (setter("payment", value=CARD["payment"]), False),  # payment and tenders
        (setter("payment", value=None), True),
        (setter("allocation", value="store_credit_last"), True),
        (setter("allocation", value="Proportional"), False),
        (setter("allocation", value="a" * 40), True),
        (setter("allocation", value="a" * 41), False),
        (setter("allocation", value="proportional\n"), False),
        (setter("lines", 1, "amount", "currency", value="USD"), False),
        (setter("lines", 1, "amount", "minor_units", value=501), False),
        (setter("lines", 1, "amount", "minor_units", value=0), False),
        (setter("lines", value=[]), True),
    ],
)
def test_tender_and_amount_rules_are_the_models(change: Callable[[dict[str, Any]], None], vouched: bool) -> None:
    # GIVEN a valid split-tender request changed in one way WHEN vouched THEN as the model decides
    document = split_document()
    change(document)
    assert (assert_sound(document) is not None) is vouched


def test_allocation_without_tenders_is_the_models_error() -> None:
    document = valid_document(allocation="proportional")
    assert assert_sound(document) is None
    assert model_dump(document) is None


@pytest.mark.parametrize(
    ("written", "dumped"),
    [
        ("2026-11-25T08:30:00Z", "2026-11-25T08:30:00Z"),
        ("2026-11-25T08:30:00+00:00", "2026-11-25T08:30:00Z"),
        ("2026-11-25T08:30:00-00:00", "2026-11-25T08:30:00Z"),
        ("2026-11-25T08:30:00.5Z", "2026-11-25T08:30:00.500000Z"),
        ("2026-11-25T08:30:00.000000+01:00", "2026-11-25T08:30:00+01:00"),
        ("2026-11-25T08:30:00.000001-05:30", "2026-11-25T08:30:00.000001-05:30"),
        ("2026-11-25T08:30:00.123456+23:59", "2026-11-25T08:30:00.123456+23:59"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00"),
        ("9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59-23:59"),
        ("2026-11-25T08:30:00.000001+00:00", "2026-11-25T08:30:00.000001Z"),
        *((odd, None) for odd in ODD_DATETIMES if odd not in STRICT_DATETIMES),
    ],
)
def test_datetimes_are_dumped_as_the_model_dumps_them(written: str, dumped: str | None) -> None:
    # GIVEN a datetime as a client writes it WHEN vouched THEN written as pydantic writes it, or left to the model
    for document in (
        valid_document(order={"order_id": "O-1", "placed_at": written, "delivered_at": written}),
        valid_document(**{"return": {"status": "received", "received_at": written}}),
    ):
        vouched = assert_sound(document)
        if dumped is None:
            assert vouched is None
        else:
            assert vouched is not None
            assert dumped in json.dumps(vouched)


# ------------------------------------------------------------------ usefulness: the samples and the fixtures


def factory_document(
    *, amount: int | None = 2_500, invoice_id: str | None = "inv-1001", ticket_id: str | None = "T-77"
) -> dict[str, Any]:
    """The document tests/support/fakes.refund_request_body builds, as a client sends it (no nulls)."""
    body = refund_request_body(amount=amount, invoice_id=invoice_id, ticket_id=ticket_id)
    document: dict[str, Any] = body.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    return document


def valid_document(**changes: Any) -> dict[str, Any]:
    """As tests/unit/domain/test_request_bodies.valid_document: the factory's body dumped without nulls."""
    document = RefundRequestBody.model_validate(factory_document()).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    document.update(changes)
    return document


REQUEST_SAMPLES = sorted(EVENTS.glob("refund_requests_*.json"))


def test_there_are_refund_request_samples() -> None:
    assert len(REQUEST_SAMPLES) >= 4


@pytest.mark.parametrize("path", REQUEST_SAMPLES, ids=lambda path: path.name)
def test_every_sample_refund_request_is_vouched_for(path: Path) -> None:
    # GIVEN a sample body from events/ WHEN vouched THEN it is, as the model dumps it
    assert assert_sound(json.loads(path.read_text())) is not None


@pytest.mark.parametrize("exclude_none", [True, False])
def test_the_test_factorys_bodies_are_vouched_for(exclude_none: bool) -> None:
    # GIVEN the body the tests' factory builds, as sent and as the model dumps it WHEN vouched THEN it is
    for document in (factory_document(), factory_document(amount=None, invoice_id=None, ticket_id=None)):
        assert assert_sound(document) is not None
        dumped = RefundRequestBody.model_validate(document).model_dump(
            mode="json", by_alias=True, exclude_none=exclude_none
        )
        assert assert_sound(dumped) is not None


# ------------------------------------------------------------------ drift and import cost


@pytest.mark.parametrize(
    ("values", "enum"),
    [
        (request_check.PAYMENT_PROVIDERS, PaymentProvider),
        (request_check.BOOKS_SYSTEMS, BooksSystem),
        (request_check.REFUND_REASONS, RefundReason),
        (request_check.RETURN_STATUSES, ReturnStatus),
        (request_check.TENDER_KINDS, TenderKind),
    ],
    ids=lambda item: getattr(item, "__name__", ""),
)
def test_the_enum_sets_are_the_models_enums(values: frozenset[str], enum: type[StrEnum]) -> None:
    assert values == frozenset(member.value for member in enum)


def test_the_iso_4217_table_is_moneys() -> None:
    assert money.CURRENCY_EXPONENTS is iso4217.CURRENCY_EXPONENTS
    assert {code: iso4217.CURRENCY_EXPONENTS[code] for code in ("JPY", "EUR", "KWD", "CLF")} == {
        "JPY": 0,
        "EUR": 2,
        "KWD": 3,
        "CLF": 4,
    }


def test_importing_the_check_loads_neither_pydantic_nor_the_models() -> None:
    probe = (
        "import json, sys, refundflow.request_check\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')"
        " or m in ('refundflow.models', 'refundflow.money'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(ROOT / "layers/common")},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == []
