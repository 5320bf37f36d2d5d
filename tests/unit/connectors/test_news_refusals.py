"""A platform function's refusal travels back to intake as the error it was (so the platform hears a 4xx),
and nothing else does."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from refundflow.adapters.news import LambdaNewsForwarder, refused_answer
from refundflow.errors import CardDataRefused, Forbidden, InvalidRequest, RefundflowError, TransientError
from refundflow.ports import TicketNews

NEWS = TicketNews(platform="zendesk", event_id="inv-1", ticket_id="4711")


class FakeLambda:
    def __init__(self, answer: dict[str, Any], function_error: str | None = None) -> None:
        self.answer = answer
        self.function_error = function_error
        self.invoked: list[str] = []

    def invoke(self, **call: Any) -> dict[str, Any]:
        self.invoked.append(call["FunctionName"])
        response: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


def forward(answer: dict[str, Any], function_error: str | None = None) -> tuple[FakeLambda, dict[str, Any]]:
    client = FakeLambda(answer, function_error)
    return client, LambdaNewsForwarder("stack-", lambda_client=client).forward("zendesk", NEWS)


def test_ticket_news_goes_to_the_desks_own_function_and_its_answer_comes_back() -> None:
    client, answer = forward({"outcome": "accepted", "refund_id": "rf_1"})
    assert client.invoked == ["stack-ticket-zendesk"]
    assert answer["refund_id"] == "rf_1"


@pytest.mark.parametrize(
    "error",
    [
        CardDataRefused("card data", errors=[{"field": "note", "problem": "holds a card number"}]),
        Forbidden("may not", code="source_mismatch"),
        InvalidRequest("not a refund request", code="ticket_not_a_refund_request"),
    ],
)
def test_a_refusal_is_raised_again_with_its_class_code_and_fields(error: RefundflowError) -> None:
    with pytest.raises(type(error)) as raised:
        forward(refused_answer(error))
    assert raised.value.code == error.code
    assert getattr(raised.value, "errors", []) == getattr(error, "errors", [])


def test_a_refusal_naming_a_server_error_class_is_only_a_client_error() -> None:
    forged = {"refused": {"type": "TransientError", "code": "x", "message": "y"}}
    with pytest.raises(InvalidRequest):
        forward(forged)


def test_a_crashed_function_is_a_transient_failure() -> None:
    with pytest.raises(TransientError):
        forward({"errorMessage": "boom"}, function_error="Unhandled")
