"""NewsForwarder on Lambda: the intake hands a verified event to the platform's own function
(``<prefix>refund-<platform>``, operation ``apply_news``) and waits for it to be applied (RequestResponse).

The intake's role may invoke only functions under that name prefix; it never holds a platform's API
credentials, the platform function never holds the webhook verification secret.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from refundflow.errors import TransientError
from refundflow.ports import NewsForwarder, ProviderEvent

APPLY_NEWS = "apply_news"
# The platform function reads the truth from its platform before answering: longer than the shared clients'
# 5 s read timeout, shorter than API Gateway's 29 s. No SDK retry: the platform delivers again on a 5xx.
_CONFIG = Config(connect_timeout=2, read_timeout=25, retries={"mode": "standard", "max_attempts": 1})


def news_payload(platform: str, event: ProviderEvent) -> dict[str, Any]:
    """What the platform function receives (its handler validates it)."""
    return {"operation": APPLY_NEWS, "platform": platform, "event": event.model_dump(mode="json")}


class LambdaNewsForwarder(NewsForwarder):
    def __init__(self, function_prefix: str, lambda_client: Any | None = None) -> None:
        """``function_prefix``: the deployed names' prefix (``<stack>-``); the function is
        ``<prefix>refund-<platform>``."""
        self.function_prefix = function_prefix
        self._client = lambda_client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("lambda", config=_CONFIG)
        return self._client

    def function_name(self, platform: str) -> str:
        return f"{self.function_prefix}refund-{platform}"

    def forward(self, platform: str, event: ProviderEvent) -> None:
        """Raises: TransientError: the function could not be invoked, or failed (nothing is marked seen)."""
        name = self.function_name(platform)
        try:
            response = self.client.invoke(
                FunctionName=name,
                InvocationType="RequestResponse",
                Payload=json.dumps(news_payload(platform, event)).encode(),
            )
        except (BotoCoreError, ClientError) as error:
            raise TransientError(
                f"could not hand event {event.event_id} to {name}: {error}", platform=platform
            ) from error
        if response.get("FunctionError"):
            detail = response["Payload"].read().decode("utf-8", "replace")[:500] if "Payload" in response else ""
            raise TransientError(
                f"{name} did not apply event {event.event_id}: {response['FunctionError']} {detail}", platform=platform
            )
