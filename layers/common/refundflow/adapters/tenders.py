"""TenderReader on Lambda: a split-tender refund's look-up reads each tender through that payment platform's own
function (``<prefix>refund-<platform>``, operation ``read_payment``), which holds the platform's credentials and
opens the payment's refundable balance; the split function never holds any platform's credentials."""

from __future__ import annotations

from typing import Any

from refundflow.adapters.payment_functions import PaymentFunctions
from refundflow.errors import RefundflowError, TransientError, error_class
from refundflow.models import PaymentReference, TenderPayment

READ_PAYMENT = "read_payment"


class LambdaTenderReader:
    def __init__(self, function_prefix: str, lambda_client: Any | None = None) -> None:
        """``function_prefix``: the deployed names' prefix (``<stack>-``)."""
        self.functions = PaymentFunctions(function_prefix, lambda_client)

    def function_name(self, payment: PaymentReference) -> str:
        return self.functions.function_name(payment.provider.value)

    def read(self, payment: PaymentReference) -> TenderPayment:
        """The tender's payment and refundable balance (the workflow step retries a TransientError).

        Raises:
            TransientError: the function could not be invoked, or failed with an error that is not ours.
            RefundflowError: the error the platform function raised (NotFound, PaymentNotKnown, RejectedError...),
                under its own class, so the workflow's catch path classifies it as for a single payment.
        """
        body = {"operation": READ_PAYMENT, "payment": payment.model_dump(mode="json")}
        answer, failed = self.functions.invoke(payment.provider.value, body, f"tender {payment.payment_id}")
        if failed:
            raise _raised(answer, self.function_name(payment))
        return TenderPayment.model_validate(answer)


def _raised(answer: Any, name: str) -> RefundflowError:
    """The platform function's error (Lambda's ``errorType``/``errorMessage``) as the class it was."""
    answer = answer if isinstance(answer, dict) else {}
    kind = error_class(str(answer.get("errorType", "")))
    message = str(answer.get("errorMessage", "failed"))[:500]
    if kind is None:
        return TransientError(f"{name} failed: {message}")
    error: RefundflowError = RefundflowError.__new__(kind)
    # The message is the error's str(): "[platform] code: message"; its code is recovered from it when present.
    code = message.split(": ", 1)[0].rsplit("] ", 1)[-1] if ": " in message else None
    RefundflowError.__init__(error, message, code=code)
    return error
