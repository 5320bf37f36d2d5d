"""The one Logger, Tracer and Metrics of refundflow, with personal data and card numbers masked."""

from __future__ import annotations

import re
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

SERVICE = "refundflow"

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_DIGIT_RUN = re.compile(r"(?<!\d)(?:\d[ .-]{0,2}){12,18}\d(?!\d)")
# Base64 secrets (whsec_…) hold "+", "/" and "=": stopping at them would leak the rest of the key.
_SECRET_VALUE = re.compile(r"\b(sk|rk|whsec|pk)_(live|test)?_?[A-Za-z0-9+/=]{6,}")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_digits(candidate: str) -> str | None:
    digits = re.sub(r"\D", "", candidate)
    return digits if 13 <= len(digits) <= 19 and _luhn_valid(digits) else None


def _mask_card(match: re.Match[str]) -> str:
    digits = _card_digits(match.group(0))
    return f"[card ****{digits[-4:]}]" if digits else match.group(0)


def contains_card_number(text: str) -> bool:
    """True if ``text`` holds a Luhn-valid run of 13 to 19 digits (spaces, dots or dashes allowed between)."""
    return any(_card_digits(match.group(0)) for match in _DIGIT_RUN.finditer(text))


def redact_text(text: str) -> str:
    """Mask e-mail addresses (keep first letter and domain), Luhn-valid card numbers and API keys."""
    text = _DIGIT_RUN.sub(_mask_card, text)
    text = _EMAIL.sub(r"\1***@\2", text)
    return _SECRET_VALUE.sub(r"\1_[redacted]", text)


def redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with every value redacted before it is written."""

    def serialize(self, log: Any) -> str:
        return super().serialize(redact(log) if isinstance(log, dict) else log)


# Steps that change nothing (a replay, a poll with no news) have no metric to publish: not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="Refundflow", service=SERVICE)
