"""The error vocabulary. Class names are the error names the state machine retries and catches.

Every subclass registers itself by name, so the catch path (``handle_failure``), which only receives a
name, can classify an error by what it *is* (``issubclass``), not by how it is spelled: a connector's
``AmountNotRepresentable`` is a ``RejectedError``. Errors that can leave a workflow step must be defined
here or in a module of ``ERROR_MODULES`` (pure modules, cheap to import). Platform connectors raise
these classes (never their own subclasses), so the catch path needs no platform code.
"""

from __future__ import annotations

import importlib
from typing import Any

# Modules that define RefundflowError subclasses a workflow step can raise, imported when a name is not
# known yet (a catch-path Lambda does not import the connectors themselves).
ERROR_MODULES: tuple[str, ...] = ()
_BY_NAME: dict[str, type[RefundflowError]] = {}


class RefundflowError(Exception):
    """Base of every error refundflow raises on purpose. ``code`` is stable and machine-readable."""

    code = "refundflow_error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _BY_NAME.setdefault(cls.__name__, cls)

    def __init__(self, message: str, *, code: str | None = None, platform: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.platform = platform

    def __str__(self) -> str:
        prefix = f"[{self.platform}] " if self.platform else ""
        return f"{prefix}{self.code}: {self.message}"


_BY_NAME[RefundflowError.__name__] = RefundflowError


def error_class(name: str) -> type[RefundflowError] | None:
    """The RefundflowError class an error name stands for (a Lambda ``errorType``, a Step Functions
    error name), or None for names that are not ours (``States.Timeout``, ``Lambda.Unknown``...)."""
    if name not in _BY_NAME:
        for module in ERROR_MODULES:
            importlib.import_module(module)
    return _BY_NAME.get(name)


def is_kind(name: str, *kinds: type[RefundflowError]) -> bool:
    """Whether the error named ``name`` is one of ``kinds`` or a subclass of one."""
    found = error_class(name)
    return found is not None and issubclass(found, kinds)


class TransientError(RefundflowError):
    """A platform or store hiccup (5xx, 429, timeout before sending). Retry with the same key."""

    code = "transient"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        platform: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message, code=code, platform=platform)
        self.retry_after_seconds = retry_after_seconds


class PaymentNotKnown(TransientError):
    """A platform that cannot be read has not told us about the payment yet (no payment news recorded): the
    look-up is tried again later, and the refund is rejected ``payment_not_known`` if the news never comes."""

    code = "payment_not_known"


class RejectedError(RefundflowError):
    """The platform refused the request for good (4xx). Final, carries the platform's reason."""

    code = "rejected"


class AmountNotRepresentable(RejectedError):
    """An amount or currency a platform cannot carry exactly (``refundflow.currencies``): refused, never
    rounded. Codes: ``amount_not_representable``, ``currency_not_supported``, or the platform's own."""

    code = "amount_not_representable"


class UnsupportedOperation(RefundflowError):
    """The platform has no such operation (its capabilities say so): a caller that asks anyway is a bug."""

    code = "unsupported_operation"


class AlreadyDoneError(RefundflowError):
    """The platform says the work is already done. Treat as success and fetch the existing object."""

    code = "already_done"


class OutcomeUnknownError(RefundflowError):
    """The request may or may not have taken effect (timeout after sending). Query before retrying."""

    code = "outcome_unknown"


class PolicyViolation(RefundflowError):
    """The refund breaks policy: it is rejected with a reason code, nothing is paid."""

    code = "policy_violation"


class InsufficientRefundableAmount(RefundflowError):
    """The payment's remaining refundable amount is smaller than the refund (no over-refund, ever)."""

    code = "insufficient_refundable_amount"


class InvalidRequest(RefundflowError):
    """Input that can never succeed as given: a client error with a precise reason."""

    code = "invalid_request"


class CardDataRefused(InvalidRequest):
    """A body (or a field mapped from a platform's object) holds a card number or security code: never accepted.
    ``errors`` names the fields, never their values."""

    code = "card_data_refused"

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class UnsupportedProvider(InvalidRequest):
    """No workflow branch for this payment provider (the state machines' ``UnsupportedProvider`` state)."""

    code = "provider_not_supported"


class IdempotencyConflict(RefundflowError):
    """The same refund key arrived again with different content."""

    code = "idempotency_conflict"


class ReturnStepExists(RefundflowError):
    """A return step (status and occurred_at) is already stored: a redelivery, never written twice."""

    code = "return_step_exists"


class NotFound(RefundflowError):
    code = "not_found"


class ConcurrentModification(RefundflowError):
    """Someone else changed the refund between our read and our write. Safe to retry the step."""

    code = "concurrent_modification"


class ProviderRefundClaimed(ConcurrentModification):
    """A refund recorded from a provider's news names a provider refund id that a refund already holds."""

    code = "provider_refund_claimed"


class IllegalTransition(RefundflowError):
    """A status change that the state model does not allow: a bug, never retried."""

    code = "illegal_transition"


class GuardUnavailable(RefundflowError):
    """The guard or idempotency store cannot be reached: fail closed, no money moves."""

    code = "guard_unavailable"


class ConfigurationError(RefundflowError):
    code = "configuration_error"


class AuthenticationFailed(RefundflowError):
    """An inbound delivery or caller could not be authenticated."""

    code = "authentication_failed"


class Forbidden(RefundflowError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"
