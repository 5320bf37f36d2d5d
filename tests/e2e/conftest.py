"""The local stack for the end-to-end suite: started once, driven over HTTP, observed through AWS APIs.

Besides the stack, the suite records two things for the data-hygiene scan that runs after every other
test (``@pytest.mark.after_suite``): every log line refundflow writes (formatted as it would be
written), and every event on the refunds bus (an extra rule sends a copy to a tap queue).

Under pytest-xdist (``make e2e``: ``-n 2 --dist loadfile``) each worker is its own process with its own stack
on its own free ports, so it runs the ``after_suite`` tests itself, once it has run everything else it was
given: they are collected once per worker (``[after-suite-gw0]``, ``[after-suite-gw1]``) and the scheduler in
tests/conftest.py hands each worker its own copy last. The fixtures below refuse any other placement.
"""

from __future__ import annotations

import json
import logging
import os
import threading
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


def this_worker() -> str:
    """The pytest-xdist worker running this process (``gw0``...), or ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Under xdist, an ``after_suite`` test is collected once per worker, each to run on that worker (only
    ``--dist loadfile`` and ``loadscope`` place them so: :func:`after_suite_worker` fails any other placement)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if not workers or metafunc.definition.get_closest_marker("after_suite") is None:
        return
    ids = [f"gw{index}" for index in range(workers)]
    metafunc.parametrize("after_suite_worker", ids, ids=[f"after-suite-{worker}" for worker in ids], indirect=True)


_after_suite_started = threading.Event()


@pytest.fixture(autouse=True)
def after_suite_worker(request: pytest.FixtureRequest) -> str:
    """The worker an ``after_suite`` test belongs to (it reads that worker's stack), checked to be this one; and
    no other end-to-end test may start in a process once its after-suite tests started (it would go unread)."""
    if request.node.get_closest_marker("after_suite") is None:
        if _after_suite_started.is_set():
            pytest.fail(f"{request.node.nodeid} ran after the after_suite tests of worker {this_worker()}")
        return this_worker()
    _after_suite_started.set()
    if len(_observed_set_ups) > 1:
        pytest.fail("the stack was restarted between end-to-end tests: run them on their own (make e2e)")
    wanted: str = getattr(request, "param", this_worker())
    if wanted != this_worker():
        pytest.fail(f"the after_suite test of worker {wanted} ran on {this_worker()}: that stack goes unread")
    return wanted


# The files with the longest tests, started first: with ``--dist loadfile`` a worker takes whole files in collection
# order, so a long file collected last is the suite's tail (test_trace's payout also grows with the balance its
# worker has built up by then). Measured with ``--durations``.
SLOW_FILES_FIRST = ("test_trace.py", "test_acquirer_reference.py", "test_split_tenders.py", "test_concurrency.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the slowest files first, and move the ``after_suite`` tests behind the last other end-to-end test
    (still inside this package, so they see the same stack), whatever else the session collected."""
    here = Path(__file__).parent
    rank = {name: position for position, name in enumerate(SLOW_FILES_FIRST)}
    ours = [item for item in items if here in item.path.parents]
    if ours:
        start = items.index(ours[0])
        slow_first = sorted(ours, key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep order
        others = [item for item in items if item not in set(ours)]
        items[:] = others[:start] + slow_first + others[start:]
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

    def bus_events(self) -> list[dict[str, Any]]:
        """Every event the tap queue received so far, oldest first, left in the queue.

        Read from moto's own queue in this process (as ``sent_emails`` reads SES), not through ``ReceiveMessage``:
        moto filters the whole queue on every receive, so reading the few thousand events of a full run ten at a
        time took most of a minute (and grew with the square of the suite)."""
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[ACCOUNT_ID][self.stack.stack.region].get_queue(EVENT_TAP)
        return [json.loads(message.body) for message in list(queue._messages)]


# One entry per set-up of ``observed`` in this process. A second one means the stack was stopped and started again
# between end-to-end tests (other packages' tests ran between them): what the first one served is gone unread.
_observed_set_ups: list[int] = []


@pytest.fixture(scope="package")
def observed() -> Iterator[Observed]:
    _observed_set_ups.append(os.getpid())
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
