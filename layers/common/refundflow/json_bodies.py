"""Request bodies as intake reads them, before any model: the raw bytes after size and media-type checks,
strict JSON (RFC 8259, bounded), delivery ids fit to be keys, and the model parse with field-level problems.

Imports no web framework (the standard library, ``errors`` and ``carddata``; pydantic when :func:`parse_body`
first reads a body into a model): intake's receiver reads bodies with it without Powertools' resolver, and
``http_api`` re-exports it for the other API functions."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from refundflow import carddata
from refundflow.errors import InvalidRequest

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"


def field_problems(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's (or the resolver's) validation errors as the problem document's ``errors``."""
    return [
        {
            "field": ".".join(str(part) for part in item.get("loc", ())) or "body",
            "problem": item.get("msg", ""),
            "type": item.get("type", ""),
        }
        for item in items
    ]


# Deeper than any body refundflow takes; checked before parsing, so the parser never recurses far.
MAX_JSON_DEPTH = 32
# Integers beyond what every JSON parser reads exactly (RFC 8259, section 6) are refused, not rounded.
MAX_JSON_INTEGER = 2**53 - 1
DEFAULT_MAX_BODY_BYTES = 65_536
_BYTE_ORDER_MARKS = (b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,256}$")


class _Refused(ValueError):
    """Raised inside the JSON parser's hooks: the body is refused with this code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid(message: str, code: str, errors: list[dict[str, Any]] | None = None) -> InvalidRequest:
    invalid = InvalidRequest(message, code=code)
    if errors is not None:
        invalid.errors = errors  # type: ignore[attr-defined]
    return invalid


def _json_depth_exceeds(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for char in _NOT_A_BRACKET.sub("", _STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = carddata.mask_text(key)[:64]
                raise _Refused(f"the key {shown!r} appears twice in one object", "duplicate_key")
            seen.add(key)
    return document


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 16 or abs(value := int(text)) > MAX_JSON_INTEGER:
        raise _Refused("an integer is out of range (at most 2**53 - 1 either way)", "number_out_of_range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number is out of range", "number_out_of_range")
    return value


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON value (RFC 8259)", "invalid_json")


def _strings(document: Any) -> Iterator[str]:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from value.keys()
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def decode_json(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, read as RFC 8259 says: UTF-8 without a byte order mark, no
    NaN or Infinity, unique keys, numbers every parser reads the same, no lone surrogates, and no
    deeper than ``MAX_JSON_DEPTH``.

    Raises:
        InvalidRequest: with the precise code (invalid_encoding, invalid_json, json_too_deep,
            duplicate_key, number_out_of_range).
    """
    if raw.startswith(_BYTE_ORDER_MARKS):
        raise _invalid("JSON must be UTF-8 without a byte order mark (RFC 8259)", "invalid_encoding")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(f"the body is not UTF-8: {error.reason} at byte {error.start}", "invalid_encoding") from error
    if "\x00" in text:
        raise _invalid("the body holds NUL characters: JSON must be UTF-8, not UTF-16 or UTF-32", "invalid_encoding")
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise _invalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels", "json_too_deep")
    try:
        document = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except _Refused as error:
        raise _invalid(str(error), error.code) from error
    except RecursionError as error:  # unreachable after the depth check; never a 500 if it were not
        raise _invalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels", "json_too_deep") from error
    except ValueError as error:
        raise _invalid(f"the body is not valid JSON: {error}", "invalid_json") from error
    if not isinstance(document, dict):
        raise _invalid("the body must be a JSON object", "invalid_json")
    if any(_SURROGATE.search(value) for value in _strings(document)):
        raise _invalid("the body holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)", "invalid_encoding")
    return document


refuse_card_data = carddata.refuse_card_data
"""Re-exported: the intake refuses card data in a body before any model sees it (``errors.CardDataRefused``)."""


def parse_body(model: type[M], raw: bytes) -> M:
    """Parse a JSON body into ``model``: strict JSON (:func:`decode_json`), then the card check on the
    whole document (so no field escapes it), then the model.

    Raises:
        InvalidRequest: not strict JSON, card data, or not the model's shape (field-level problems attached).
    """
    document = decode_json(raw)
    refuse_card_data(document)
    return validate_document(model, document)


def validate_document(model: type[M], document: dict[str, Any]) -> M:
    """A strict JSON document (card-checked) read as ``model``.

    Raises:
        InvalidRequest: not the model's shape (``validation_failed``, field-level problems attached).
    """
    from pydantic import ValidationError

    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise _invalid(
            f"the body does not match {model.__name__}",
            "validation_failed",
            field_problems(error.errors(include_url=False, include_input=False)),
        ) from error


def delivery_id(value: str) -> str:
    """A delivery id (``webhook-id``) fit to be a key: printable ASCII, at most 256 characters.

    Raises:
        InvalidRequest: otherwise (code invalid_delivery_id).
    """
    if not _DELIVERY_ID.match(value):
        raise _invalid("the delivery id must be 1 to 256 printable ASCII characters", "invalid_delivery_id")
    return value


class HttpRequest(Protocol):
    """What :func:`raw_body` reads of a request: Powertools' ``APIGatewayProxyEventV2`` or the receiver's own."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> str | None: ...

    @property
    def is_base64_encoded(self) -> bool | None: ...


def raw_body(
    event: HttpRequest,
    *,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    json_only: bool = True,
    allow_empty: bool = False,
) -> bytes:
    """The request body exactly as sent (signatures are computed over it), after size and type checks.
    Bytes, never decoded here: what they encode is the parser's question, after the signature's.

    ``allow_empty`` leaves an empty body to the signature check of a signed route: a forged delivery
    is then refused as unauthenticated (401), whatever its body.

    Raises:
        PayloadTooLarge, UnsupportedMediaType, InvalidRequest (empty body, unless allowed).
    """
    content_type = (event.headers or {}).get("content-type", "")
    if json_only and content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(f"content-type must be application/json, got {content_type or 'none'}")
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidRequest("the body is not valid base64", code="invalid_encoding") from error
    else:
        # A text body arrives as a str; surrogates a proxy let through stay bytes the parser refuses.
        data = body.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the body is {len(data)} bytes; the limit is {max_bytes}")
    if not data and not allow_empty:
        raise InvalidRequest("the body is empty", code="empty_body")
    return data
