"""The error vocabulary. Class names are the error names the state machine retries and catches."""

from __future__ import annotations


class RefundflowError(Exception):
    """Base of every error refundflow raises on purpose. ``code`` is stable and machine-readable."""

    code = "refundflow_error"

    def __init__(self, message: str, *, code: str | None = None, platform: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.platform = platform

    def __str__(self) -> str:
        prefix = f"[{self.platform}] " if self.platform else ""
        return f"{prefix}{self.code}: {self.message}"


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


class RejectedError(RefundflowError):
    """The platform refused the request for good (4xx). Final, carries the platform's reason."""

    code = "rejected"


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


class IdempotencyConflict(RefundflowError):
    """The same refund key arrived again with different content."""

    code = "idempotency_conflict"


class NotFound(RefundflowError):
    code = "not_found"


class ConcurrentModification(RefundflowError):
    """Someone else changed the refund between our read and our write. Safe to retry the step."""

    code = "concurrent_modification"


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
