"""Asking a payment platform's own function (``<prefix>refund-<platform>``) to run one operation outside the
workflow: the acquirer reference schedule's ``read_acquirer_reference`` of a refund, a split-tender refund's
``read_payment`` of a tender (adapters/tenders.py). The caller holds no platform credentials; its role may invoke
only the payment functions."""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from refundflow.catalog import ROLE_FUNCTION_PREFIX
from refundflow.errors import TransientError

# The platform function reads the refund at its platform (the shared clients' timeouts are 3 s + 10 s, one retry).
_CONFIG = Config(connect_timeout=2, read_timeout=40, retries={"mode": "standard", "max_attempts": 1})


class PaymentFunctions:
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

    def function_name(self, platform: str) -> str:
        return f"{self.function_prefix}{ROLE_FUNCTION_PREFIX['payment']}-{platform}"

    def invoke(self, platform: str, payload: dict[str, Any], what: str) -> tuple[Any, bool]:
        """The function's answer to ``payload`` and whether it is an error the function raised (Lambda's
        ``FunctionError``: the answer is then ``{"errorType", "errorMessage"}``).

        Raises:
            TransientError: the function could not be invoked (``what`` names the call in the message).
        """
        name = self.function_name(platform)
        try:
            response = self.client.invoke(
                FunctionName=name, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
            )
        except (BotoCoreError, ClientError) as error:
            raise TransientError(f"could not invoke {name} for {what}: {error}", platform=platform) from error
        answer = json.loads(response["Payload"].read() or b"{}") if "Payload" in response else {}
        return answer, bool(response.get("FunctionError"))

    def run(self, platform: str, operation: str, refund_id: str) -> dict[str, Any]:
        """The function's answer (a StepResult document).

        Raises:
            TransientError: the function could not be invoked, or failed.
        """
        answer, failed = self.invoke(platform, {"operation": operation, "refund_id": refund_id}, refund_id)
        if failed:
            detail = json.dumps(answer)[:500]
            name = self.function_name(platform)
            raise TransientError(f"{name} failed {operation} of {refund_id}: {detail}", platform=platform)
        document: dict[str, Any] = answer if isinstance(answer, dict) else {}
        return document
