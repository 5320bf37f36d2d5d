"""NewsForwarder on Lambda: the intake hands a verified event to the platform's own function and waits for it to be
applied (RequestResponse). The kind of news names the catalog role whose function applies it: a payment
platform's event goes to ``<prefix>refund-<platform>`` (operation ``apply_news``), a help desk's ticket to
``<prefix>ticket-<platform>`` (``apply_ticket_news``), a books platform's returns news to
``<prefix>books-<platform>`` (``apply_return_news``).

The intake's role may invoke only functions under that name prefix; it never holds a platform's API
credentials, the platform function never holds the webhook verification secret.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from refundflow.catalog import ROLE_FUNCTION_PREFIX
from refundflow.domain.inbound import refusal_document
from refundflow.errors import (
    Forbidden,
    IdempotencyConflict,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    RefundflowError,
    TransientError,
    error_class,
)
from refundflow.ports import NewsForwarder, ProviderEvent, ReturnNews, TicketNews

APPLY_NEWS = "apply_news"
APPLY_TICKET_NEWS = "apply_ticket_news"
APPLY_RETURN_NEWS = "apply_return_news"
News = ProviderEvent | TicketNews | ReturnNews
# Each kind of news: the catalog role whose function applies it, and the operation it is asked for.
NEWS_ROUTES: dict[type[ProviderEvent | TicketNews | ReturnNews], tuple[str, str]] = {
    ProviderEvent: ("payment", APPLY_NEWS),
    TicketNews: ("ticket", APPLY_TICKET_NEWS),
    ReturnNews: ("books", APPLY_RETURN_NEWS),
}
# The platform function reads the truth from its platform before answering: longer than the shared clients'
# 5 s read timeout, shorter than API Gateway's 29 s. No SDK retry: the platform delivers again on a 5xx.
_CONFIG = Config(connect_timeout=2, read_timeout=25, retries={"mode": "standard", "max_attempts": 1})


def news_payload(platform: str, event: News) -> dict[str, Any]:
    """What the platform function receives (its handler validates it)."""
    operation = NEWS_ROUTES[type(event)][1]
    return {"operation": operation, "platform": platform, "event": event.model_dump(mode="json")}


class LambdaNewsForwarder(NewsForwarder):
    def __init__(self, function_prefix: str, lambda_client: Any | None = None) -> None:
        """``function_prefix``: the deployed names' prefix (``<stack>-``); the function is
        ``<prefix><role prefix>-<platform>`` of the role the news belongs to (``NEWS_ROUTES``)."""
        self.function_prefix = function_prefix
        self._client = lambda_client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("lambda", config=_CONFIG)
        return self._client

    def function_name(self, platform: str, event: News | None = None) -> str:
        role = NEWS_ROUTES[type(event)][0] if event is not None else "payment"
        return f"{self.function_prefix}{ROLE_FUNCTION_PREFIX[role]}-{platform}"

    def forward(self, platform: str, event: News) -> dict[str, Any]:
        """The function's answer. A refusal it answers (a help desk's ticket that is not a valid refund request)
        is raised here as the error it was, so intake answers the platform 4xx.

        Raises:
            TransientError: the function could not be invoked, or failed (nothing is marked seen).
            RefundflowError: the function refused the news (``refused`` in its answer).
        """
        name = self.function_name(platform, event)
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
        answer: dict[str, Any] = json.loads(response["Payload"].read() or b"{}") if "Payload" in response else {}
        refused = answer.get("refused") if isinstance(answer, dict) else None
        if refused:
            raise refusal(refused)
        return answer


def refusal(refused: dict[str, Any]) -> RefundflowError:
    """The error a platform function answered with (``{"type", "code", "message", "errors"}``), rebuilt: only
    client errors travel this way (anything else is a FunctionError, a 5xx)."""
    found = error_class(str(refused.get("type")))
    kind = found if found is not None and issubclass(found, _CLIENT_ERRORS) else InvalidRequest
    error: Any = RefundflowError.__new__(kind)
    RefundflowError.__init__(error, str(refused.get("message", "refused")), code=str(refused.get("code", "refused")))
    if refused.get("errors"):
        error.errors = list(refused["errors"])
    result: RefundflowError = error
    return result


_CLIENT_ERRORS = (InvalidRequest, Forbidden, IdempotencyConflict, NotFound, IllegalTransition)


def refused_answer(error: RefundflowError) -> dict[str, Any]:
    """What a platform function answers for a client error, so intake can answer the platform with it."""
    return {"refused": refusal_document(error)}
