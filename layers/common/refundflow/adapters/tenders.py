"""TenderReader on Lambda: a split-tender refund's look-up reads each tender through that payment platform's own
function (``<prefix>refund-<platform>``, operation ``read_payment``), which holds the platform's credentials and
opens the payment's refundable balance; the split function never holds any platform's credentials."""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from refundflow.catalog import ROLE_FUNCTION_PREFIX
from refundflow.errors import RefundflowError, TransientError, error_class
from refundflow.models import PaymentReference, TenderPayment

READ_PAYMENT = "read_payment"
# The platform function reads the payment from its platform (the shared clients' read timeout is 5 s, with
# retries); the workflow step retries a TransientError.
_CONFIG = Config(connect_timeout=2, read_timeout=40, retries={"mode": "standard", "max_attempts": 2})


class LambdaTenderReader:
    def __init__(self, function_prefix: str, lambda_client: Any | None = None) -> None:
        """``function_prefix``: the deployed names' prefix (``<stack>-``)."""
        self.function_prefix = function_prefix
        self._client = lambda_client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("lambda", config=_CONFIG)
        return self._client

    def function_name(self, payment: PaymentReference) -> str:
        return f"{self.function_prefix}{ROLE_FUNCTION_PREFIX['payment']}-{payment.provider.value}"

    def read(self, payment: PaymentReference) -> TenderPayment:
        """The tender's payment and refundable balance.

        Raises:
            TransientError: the function could not be invoked, or failed with an error that is not ours.
            RefundflowError: the error the platform function raised (NotFound, PaymentNotKnown, RejectedError...),
                under its own class, so the workflow's catch path classifies it as for a single payment.
        """
        name = self.function_name(payment)
        body = {"operation": READ_PAYMENT, "payment": payment.model_dump(mode="json")}
        try:
            response = self.client.invoke(FunctionName=name, InvocationType="RequestResponse", Payload=json.dumps(body))
        except (BotoCoreError, ClientError) as error:
            raise TransientError(f"could not read {payment.payment_id} through {name}: {error}") from error
        answer = json.loads(response["Payload"].read() or b"{}") if "Payload" in response else {}
        if response.get("FunctionError"):
            raise _raised(answer, name)
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
