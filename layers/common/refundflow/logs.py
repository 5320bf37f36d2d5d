"""The one Logger of refundflow (Powertools' JSON logs), with personal data, card numbers and secrets masked.

Its own module, apart from the Tracer and Metrics (refundflow.observability), so that the request intake logs
without importing X-Ray's SDK: README, Cost per refund, "Cold import".
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from refundflow import carddata

SERVICE = "refundflow"

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Base64 secrets (whsec_…) hold "+", "/" and "=": stopping at them would leak the rest of the key. Keys are
# found inside identifiers too (STRIPE_KEY_sk_live_…): with live/test or whsec_ anywhere, bare at a boundary.
_SECRET_VALUE = re.compile(
    r"(?:(sk|rk|pk)_(?:live|test)_[A-Za-z0-9+/=_]{4,}"
    r"|(whsec)_[A-Za-z0-9+/=]{4,}"
    r"|(?<![A-Za-z0-9])(sk|rk|pk)_[A-Za-z0-9]{10,}[A-Za-z0-9+/=_]*)"
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Values under these keys are secrets whatever they look like (compared lower-case, "-" read as "_").
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "x_api_key",
        "private_key",
        "signing_key",
    }
)
_SECRET_KEY_ENDINGS = ("_token", "_secret", "_secrets", "_password", "_api_key", "_apikey", "_private_key")
REDACTED = "[redacted]"


def _secret_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return name in _SECRET_KEYS or name.endswith(_SECRET_KEY_ENDINGS)


def _mask_secret(match: re.Match[str]) -> str:
    prefix = next(group for group in match.groups() if group)
    return f"{prefix}_{REDACTED}"


def redact_text(text: str) -> str:
    """Mask card numbers and security codes, e-mail addresses (first letter and domain kept), JWTs,
    ``Bearer``/``Basic`` credentials and API keys or webhook secrets."""
    text = carddata.mask_text(text)
    text = _JWT.sub("[jwt redacted]", text)
    text = _AUTH_SCHEME.sub(lambda match: f"{match.group(1)} {REDACTED}", text)
    text = _SECRET_VALUE.sub(_mask_secret, text)
    return _EMAIL.sub(r"\1***@\2", text)


def redact(value: Any) -> Any:
    """A JSON-like value with every string redacted and the values under secret-named keys replaced."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            redact_text(str(key)): REDACTED if _secret_key(str(key)) and item is not None else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and carddata.find_in_text(str(value)):
        return carddata.mask_text(str(value))
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, redacting what it wrote: whatever was logged (a message, ``extra=``
    values that are models, dataclasses or exceptions) is redacted as the text it became."""

    def serialize(self, log: Any) -> str:
        written = super().serialize(log)
        try:
            document = json.loads(written)
        except ValueError:
            return redact_text(written)
        return self.json_serializer(redact(document))


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
