"""Card data (PCI DSS 3.2.1-3.4): find primary account numbers and card security codes in text and in
parsed JSON documents. One detector for the inbound check (every body, every string, every key) and the
log redaction.

A card number is any 13-19 digit window of a run of digit groups, starting and ending between groups,
that carries a card issuer's prefix, has a length that issuer uses and passes the Luhn check. Groups
are digits split by separators (spaces of every kind, ``-``, ``_``, ``/``, ``.``, zero-width
characters), so ``4242 4242 4242 4242 123``, ``4242424242424242 123`` and ``4242_4242_4242_4242`` are
found; letters and other punctuation end a run, so UUIDs, ISO dates and order references are not, nor
is a longer number whose first 16 digits happen to pass (a number is read whole between separators).
Two id shapes are read as ids, never as cards: Amazon Pay's object ids (``S01-1234567-1234567``, with
``-C123456`` / ``-R123456`` for charges and refunds), whose two 7-digit groups would otherwise make a
14-digit Diners-shaped window about once in 250 ids (only a 14-digit number can hide in that shape, and
nobody writes a card number in 7-digit groups after a letter and two digits); and UUIDs in their canonical
8-4-4-4-12 form (Xero's invoice ids), whose leading groups are sometimes all digits.
A security code is a CVV/CVC/CSC/CID keyword followed by 3 or 4 digits.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, Literal

# Every Unicode space (\s), the ASCII separators people type, and the zero-width characters that hide.
_SEPARATOR = r"[\s\-_/.\u200b\u200c\u200d\u2060\ufeff]"
# A run of digit groups; a group is any digits (all scripts: int() reads them), up to 3 separators between.
_DIGIT_RUN = re.compile(rf"(?<!\d)\d+(?:{_SEPARATOR}{{1,3}}\d+)*")
_GROUP = re.compile(r"\d+")
# Ids whose digit groups are never a card: Amazon Pay object ids (charge permission, charge, refund: a letter, two
# digits, two 7-digit groups), and UUIDs in their canonical 8-4-4-4-12 form (Xero's InvoiceID...), whose groups are
# all digits often enough (8-4-4 digits make 16) to pass for a card about once in a few thousand ids.
_PLATFORM_ID = re.compile(
    r"(?<![A-Za-z0-9])[A-Z][0-9]{2}-[0-9]{7}-[0-9]{7}(?![0-9])"
    r"|(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])"
)
_ANY_DIGIT = re.compile(r"\d")
_CVV_WORD = r"(?:cvv2?|cvc2?|csc|cid|cav2|card\s*security\s*code|security\s*code)"
_SECURITY_CODE = re.compile(
    rf"(?<![A-Za-z]){_CVV_WORD}(?![A-Za-z])(?:{_SEPARATOR}|[:=#])*(\d{{3,4}})(?!\d)", re.IGNORECASE
)
_CVV_KEY = re.compile(rf"^{_CVV_WORD}$", re.IGNORECASE)
_SECURITY_CODE_VALUE = re.compile(r"^\s*\d{3,4}\s*$")

# Issuer identification number ranges (inclusive, compared on the same number of leading digits) and the
# lengths their card numbers have. Maestro's 12-15 digit numbers are left out: they are rare, and 13-digit
# platform ids starting with 5 or 6 (Shopify orders) are not.
_ANY_LENGTH = frozenset(range(16, 20))
_ISSUERS: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("2200", "2204", _ANY_LENGTH),  # Mir
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("300", "305", frozenset(range(14, 20))),  # Diners Club
    ("3095", "3095", frozenset(range(14, 20))),
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    ("3528", "3589", _ANY_LENGTH),  # JCB
    ("353", "353", frozenset({16})),  # RuPay
    ("356", "356", frozenset({16})),
    ("50", "50", _ANY_LENGTH),  # Maestro, Verve, RuPay
    ("56", "69", _ANY_LENGTH),  # Maestro, Discover (6011, 644-649, 65), UnionPay (62), RuPay (60)
    ("81", "82", _ANY_LENGTH),  # UnionPay, RuPay
    ("9792", "9792", frozenset({16})),  # Troy
)

Kind = Literal["card_number", "card_security_code"]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: Kind
    last4: str = ""


@dataclass(frozen=True)
class Finding:
    """Card data in a JSON document: where (a dotted path, list indexes as numbers) and what."""

    field: str
    kind: Kind
    in_key: bool = False


def _digit_values(text: str) -> list[int]:
    return [int(char) for char in text]


def _luhn_valid(digits: list[int]) -> bool:
    total = 0
    for index, value in enumerate(reversed(digits)):
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _issued(digits: list[int]) -> bool:
    """A card issuer's prefix, and a length that issuer's numbers have."""
    head = "".join(str(value) for value in digits[:4])
    return any(low <= head[: len(low)] <= high and len(digits) in lengths for low, high, lengths in _ISSUERS)


def card_number_spans(text: str) -> Iterator[Span]:
    """Spans of ``text`` holding a card number, from its first digit to the end of its run of digits."""
    platform_ids = [match.span() for match in _PLATFORM_ID.finditer(text)] if "-" in text else []
    for run in _DIGIT_RUN.finditer(text):
        if any(start <= run.start() and run.end() <= end for start, end in platform_ids):
            continue
        groups = [(group.start(), _digit_values(group.group(0))) for group in _GROUP.finditer(run.group(0))]
        if sum(len(values) for _, values in groups) < 13:
            continue
        for first in range(len(groups)):
            digits: list[int] = []
            last4 = ""
            for _, values in groups[first:]:
                digits.extend(values)
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and _issued(digits) and _luhn_valid(digits):
                    last4 = "".join(str(value) for value in digits[-4:])  # the longest number that passes
            if last4:
                # to the end of the run: digits typed after a card number (expiry, code) go with it
                yield Span(run.start() + groups[first][0], run.end(), "card_number", last4)
                break


def security_code_spans(text: str) -> Iterator[Span]:
    """Spans of ``text`` holding a card security code (the keyword and its digits)."""
    for match in _SECURITY_CODE.finditer(text):
        yield Span(match.start(), match.end(), "card_security_code")


def find_in_text(text: str) -> Kind | None:
    """What card data ``text`` holds, if any (a card number before a security code)."""
    digits = len(_ANY_DIGIT.findall(text))  # most strings of a body have too few digits to hold either
    if digits >= 13 and any(True for _ in card_number_spans(text)):
        return "card_number"
    if digits >= 3 and _SECURITY_CODE.search(text):
        return "card_security_code"
    return None


def mask_text(text: str) -> str:
    """``text`` with card numbers masked to their last four digits and security codes removed."""
    spans = sorted([*card_number_spans(text), *security_code_spans(text)], key=lambda span: span.start)
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for span in spans:
        if span.start < cursor:
            continue
        pieces.append(text[cursor : span.start])
        pieces.append(f"[card ****{span.last4}]" if span.kind == "card_number" else "[card security code]")
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _scalar_kind(value: Any) -> Kind | None:
    if isinstance(value, str):
        return find_in_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and 10**12 <= abs(value) < 10**19:
        return find_in_text(str(abs(value)))
    return None


def _join(path: str, part: str | int) -> str:
    return f"{path}.{part}" if path else str(part)


def find_in_document(document: Any, *, platform_ids: Collection[str] = ()) -> list[Finding]:
    """Every place of a parsed JSON document holding card data: string values, integers of card
    length, object keys, and a security code split as ``{"cvv": "123"}``. Paths never echo the data:
    a key holding card data is reported at its object.

    ``platform_ids``: values that are a platform's own record ids, known as such (the ticket a verified
    help-desk delivery names, read back from the platform's API): a value equal to one is an id, never a card.
    Zoho's 19-digit record ids would otherwise read as Visa numbers about once in ten."""
    findings: list[Finding] = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                key_kind = find_in_text(key)
                if key_kind is not None:
                    findings.append(Finding(path or "body", key_kind, in_key=True))
                    continue
                child = _join(path, key)
                if _CVV_KEY.match(key) and isinstance(item, str | int) and _SECURITY_CODE_VALUE.match(str(item)):
                    findings.append(Finding(child, "card_security_code"))
                    continue
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((_join(path, index), item) for index, item in enumerate(value))
        else:
            kind = None if platform_ids and str(value) in platform_ids else _scalar_kind(value)
            if kind is not None:
                findings.append(Finding(path or "body", kind))
    return sorted(findings, key=lambda finding: finding.field)


def refuse_card_data(document: Any, *, platform_ids: Collection[str] = ()) -> None:
    """Card data is never accepted (PCI DSS): any string, key or number of a document holding a card number
    or security code refuses the whole document, naming the fields (never echoing them). ``platform_ids``: as
    :func:`find_in_document`.

    Raises:
        CardDataRefused: with one ``errors`` entry per field.
    """
    from refundflow.errors import CardDataRefused

    findings = find_in_document(document, platform_ids=platform_ids)
    if findings:
        problems = {"card_number": "holds a card number", "card_security_code": "holds a card security code"}
        errors = [
            {
                "field": finding.field,
                "problem": ("a key of this object " if finding.in_key else "") + problems[finding.kind],
                "type": finding.kind,
            }
            for finding in findings
        ]
        raise CardDataRefused(
            "card data is never accepted: refunds need only the payment provider's ids", errors=errors
        )
