"""The local stack for the end-to-end suite: started once, driven over HTTP, observed through AWS APIs.

Besides the stack, the suite records two things for the data-hygiene scan that runs after every other
test (``@pytest.mark.after_suite``): every log line refundflow writes (formatted as it would be
written), and every event on the refunds bus (an extra rule sends a copy to a tap queue).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.harness import ACCOUNT_ID, E2EClient, Orders, acquire_stack, release_stack

EVENT_TAP = "refundflow-e2e-event-tap"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "after_suite: runs after every other end-to-end test (scans what they left)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the ``after_suite`` tests behind the last other end-to-end test (still inside this package,
    so they see the same stack), whatever else the session collected."""
    here = Path(__file__).parent
    last = [item for item in items if item.get_closest_marker("after_suite") and here in item.path.parents]
    if not last:
        return
    rest = [item for item in items if item not in last]
    ours = [index for index, item in enumerate(rest) if here in item.path.parents]
    position = ours[-1] + 1 if ours else len(rest)
    items[:] = rest[:position] + last + rest[position:]


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Observed:
    """What the suite saw go by: log lines and bus events."""

    stack: DevStack
    log_lines: list[str] = field(default_factory=list)
    tap_url: str = ""

    def bus_events(self, *, hidden_for: int = 30) -> list[dict[str, Any]]:
        """Every event the tap queue received so far (left in the queue, visible again to later readers after
        ``hidden_for`` seconds: a read that takes longer meets its first messages again and ends there)."""
        sqs = self.stack.client("sqs")
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(5000):
            batch = sqs.receive_message(
                QueueUrl=self.tap_url, MaxNumberOfMessages=10, VisibilityTimeout=hidden_for
            ).get("Messages", [])
            new = [message for message in batch if message["MessageId"] not in seen]
            if not new:
                # empty, or only messages read already (visible again once the read took longer than their
                # visibility timeout): everything has been seen
                break
            for message in new:
                seen[message["MessageId"]] = json.loads(message["Body"])
        return list(seen.values())


@pytest.fixture(scope="package")
def observed() -> Iterator[Observed]:
    stack = acquire_stack()
    observed = Observed(stack=stack)
    handler = _Collect(observed.log_lines)
    from refundflow.observability import logger

    handler.setFormatter(logger.registered_formatter)
    refundflow_logger = logging.getLogger("refundflow")
    refundflow_logger.addHandler(handler)
    # What the libraries the functions use write themselves (Powertools' tracer logs every exception).
    libraries = _Collect(observed.log_lines)
    libraries.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    library_loggers = [logging.getLogger(name) for name in ("aws_lambda_powertools", "botocore", "stripe")]
    for library_logger in library_loggers:
        library_logger.addHandler(libraries)
    previous_level = logger.log_level
    logger.setLevel("INFO")
    observed.tap_url = _event_tap(stack)
    try:
        yield observed
    finally:
        refundflow_logger.removeHandler(handler)
        for library_logger in library_loggers:
            library_logger.removeHandler(libraries)
        logger.setLevel(previous_level)
        release_stack()


def _event_tap(stack: DevStack) -> str:
    """A queue that receives a copy of every refundflow event on the bus (an integrator's audit tap)."""
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=EVENT_TAP)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = stack.client("events")
    bus = stack.env()["EVENT_BUS_NAME"]
    events.put_rule(Name=EVENT_TAP, EventBusName=bus, EventPattern=json.dumps({"source": ["refundflow"]}))
    events.put_targets(Rule=EVENT_TAP, EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    return str(url)


@pytest.fixture
def stack(observed: Observed) -> DevStack:
    return observed.stack


@pytest.fixture
def client(stack: DevStack) -> E2EClient:
    return E2EClient(stack.api_url)


@pytest.fixture
def orders(client: E2EClient) -> Orders:
    return Orders(client)


@pytest.fixture
def sent_emails(stack: DevStack) -> Any:
    """The e-mails SES accepted, as moto's SES keeps them: ``sent_emails(to=...)``."""
    from moto.ses.models import ses_backends

    def read(to: str | None = None) -> list[dict[str, Any]]:
        backend = ses_backends[ACCOUNT_ID][stack.stack.region]
        messages = []
        for message in list(backend.sent_messages):
            template = getattr(message, "template", None)
            if template is None:
                continue
            recipients = [address for addresses in message.destinations.values() for address in addresses]
            if to is None or to in recipients:
                messages.append(
                    {"template": template, "to": recipients, "data": json.loads(message.template_data or "{}")}
                )
        return messages

    return read
