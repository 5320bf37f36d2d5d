"""One GraphQL request over HTTP POST, as the GraphQL payment connectors (Braintree, Shopify) send it.

The GraphQL over HTTP convention (graphql.org/learn/serving-over-http): ``POST {"query", "variables"}`` answers
``{"data", "errors"?, "extensions"?}``; a request the server refused as a whole has top-level ``errors`` (or a non-2xx
status) and no usable ``data``. Per-field refusals (``userErrors``) are the platform's and stay with the connector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from refundflow.connectors.http import HttpClient, HttpResponse
from refundflow.errors import OutcomeUnknownError, TransientError

Refusal = Callable[[HttpResponse, dict[str, Any]], NoReturn]
"""Raises the platform's error for an answer that is not 2xx or has top-level ``errors`` (its body; {} unreadable)."""


def post(
    http: HttpClient,
    document: str,
    variables: Mapping[str, Any],
    *,
    url: str,
    headers: Mapping[str, str],
    write: bool,
    title: str,
    refuse: Refusal,
    auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The answer's ``data``.

    Raises:
        OutcomeUnknownError: a mutation (``write``) with no answer, or an answer without data: it may have moved money.
        TransientError: the same for a query: GraphQL reads are POSTs too, and a query that got no answer changed
            nothing, so it is simply retried.
        RefundflowError: what ``refuse`` maps a refused request to.
    """
    try:
        answer = http.request(
            "POST",
            url.rsplit("/", 1)[-1],
            absolute_url=url,
            json={"query": document, "variables": dict(variables)},
            headers=headers,
            auth=auth,
        )
    except OutcomeUnknownError as error:
        if write:
            raise
        raise TransientError(error.message, platform=http.platform) from error
    body = answer.json_object_or_empty()
    if not answer.ok or body.get("errors"):
        refuse(answer, body)
    data = body.get("data")
    if not isinstance(data, dict):
        message = f"{title} answered {answer.status} without data"
        if write:
            raise OutcomeUnknownError(message, platform=http.platform)
        raise TransientError(message, platform=http.platform)
    return data
