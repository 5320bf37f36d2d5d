"""Exit codes and the one-line errors every command ends with when something is wrong."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Exit(IntEnum):
    """The ``refundflow`` exit codes (README: refundflow CLI)."""

    OK = 0
    ERROR = 1  # unexpected: a bug, or an answer the CLI does not understand
    USAGE = 2  # bad arguments or options (also click's own)
    REFUSED = 3  # the API or AWS refused the request (4xx problem document, validation, authorisation)
    NOT_FOUND = 4  # no such refund, queue, archive or stack
    UNAVAILABLE = 5  # the API or AWS could not be reached or answered 5xx
    NOT_ALLOWED = 6  # the refund's state does not allow the action (retry, approve...): the reason is printed
    CONFIG = 7  # missing configuration: no signing secret, no token, no stack outputs
    REFUND_UNSUCCESSFUL = 10  # followed to a final status that is not a success (REJECTED, FAILED)
    WAITING_FOR_PERSON = 11  # followed until it stopped for a person (PENDING_APPROVAL, NEEDS_ATTENTION) or its goods
    TIMED_OUT = 12  # still moving when --wait-seconds ran out
    AUDIT_BROKEN = 13  # refunds show, refunds trace: an audit chain does not verify
    POLICY_INVALID = 20  # policy check: the policy file is invalid
    POLICY_SAMPLES_FAILED = 21  # policy check: a sample is invalid or an expectation is not met


class CliError(Exception):
    """One clear line: ``error[<code>]: <message>``, and an exit code."""

    def __init__(self, code: str, message: str, exit_code: Exit = Exit.ERROR, *, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code
        self.details = details

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        if self.details is not None:
            document["error"]["details"] = self.details
        document["exit_code"] = int(self.exit_code)
        return document


def from_problem(status: int, body: Any, what: str) -> CliError:
    """A CliError from an API answer: the problem document's ``code`` and ``detail`` when there is one
    (API Gateway's own ``{"message": ...}`` otherwise)."""
    code, detail = f"http_{status}", ""
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        detail = str(body.get("detail") or body.get("message") or "")
        errors = body.get("errors")
        if errors:
            detail += " (" + "; ".join(_field_problem(item) for item in errors[:5]) + ")"
    message = f"{what}: HTTP {status}" + (f", {detail}" if detail else "")
    if status == 404:
        exit_code = Exit.NOT_FOUND
    elif status >= 500:
        exit_code = Exit.UNAVAILABLE
    else:
        exit_code = Exit.REFUSED
    return CliError(code, message, exit_code, details=body if isinstance(body, dict) else None)


def _field_problem(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    if "field" in item or "problem" in item:
        return f"{item.get('field', '')}: {item.get('problem', '')}".strip(": ")
    where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
    return f"{where}: {item.get('msg', item)}" if where else str(item.get("msg", item))
