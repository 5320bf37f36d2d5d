"""The local stack runs every function in one process and one Logger (refundflow.logs), where AWS gives each its own
process: each invocation logs with its own keys (local/lambdas.py, ``_LogKeys``), whether invocations run at once on
several threads or one invokes another on its own thread (intake forwarding news to a platform's function)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from local.cfn import Stack
from local.lambdas import LocalFunctions
from refundflow.logs import logger

OUTER, INNER, OTHER = "ValidateRefundFunction", "GetRefundFunction", "EvaluatePolicyFunction"


class Lines(logging.Handler):
    """Each log line as the Logger's own formatter writes it, parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logger.registered_formatter)
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        with self._lock:
            self.lines.append(line)

    def said(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["message"] == message]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger._logger.addHandler(handler)  # (Powertools keeps its stdlib logger there)
    try:
        yield handler
    finally:
        logger._logger.removeHandler(handler)


def handler_module(handler: Any) -> ModuleType:
    module = ModuleType("fake_function")
    module.lambda_handler = handler  # type: ignore[attr-defined]
    return module


def test_concurrent_and_nested_invocations_each_log_with_their_own_keys(lines: Lines) -> None:
    functions = LocalFunctions(Stack.from_template("refundflow-local"))
    both_running = threading.Barrier(2)

    @logger.inject_lambda_context(clear_state=True)
    def inner(event: dict[str, Any], context: Any) -> None:
        logger.append_keys(refund_id=event["refund_id"], delivery_id="dlv-inner")
        logger.warning("inner")

    @logger.inject_lambda_context(clear_state=True)
    def outer(event: dict[str, Any], context: Any) -> None:
        logger.append_keys(refund_id=event["refund_id"])
        both_running.wait(timeout=30)  # the other invocation has set its keys too
        if event.get("forwards"):
            functions.invoke(INNER, {"refund_id": "rf_inner"})
        logger.warning("outer")

    # GIVEN two functions' handlers, one of which invokes a third on its own thread before it logs
    functions._idle.update(  # the local stack's warm containers
        {OUTER: [handler_module(outer)], OTHER: [handler_module(outer)], INNER: [handler_module(inner)]}
    )
    # WHEN both run at once on two threads
    threads = [
        threading.Thread(target=functions.invoke, args=(OUTER, {"refund_id": "rf_outer", "forwards": True})),
        threading.Thread(target=functions.invoke, args=(OTHER, {"refund_id": "rf_other"})),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # THEN each line names its own function and refund, and the caller's keys are its own again after the call
    stack = functions.stack
    said = {(line["function_name"], line["refund_id"], line.get("delivery_id")) for line in lines.said("outer")}
    assert said == {
        (stack.physical_name(OUTER), "rf_outer", None),
        (stack.physical_name(OTHER), "rf_other", None),
    }
    (inner_line,) = lines.said("inner")
    assert (inner_line["function_name"], inner_line["refund_id"]) == (stack.physical_name(INNER), "rf_inner")
    # AND an invocation from this thread leaves this thread's keys as they were
    functions._idle[INNER].append(handler_module(inner))
    before = dict(logger.registered_formatter.log_format)
    functions.invoke(INNER, {"refund_id": "rf_from_here"})
    assert [line["refund_id"] for line in lines.said("inner")] == ["rf_inner", "rf_from_here"]
    assert logger.registered_formatter.log_format == before
