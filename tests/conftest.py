"""Fixtures shared by every suite."""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from refundflow import settings

ROOT = Path(__file__).resolve().parent.parent
# The official API specs, beside the repository; tests/contract/conftest.py decides what their absence means.
CONTRACTS = ROOT.parent / "shared" / "contracts"

# Tests never talk to real AWS: fake credentials and a fixed region for every boto3 client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are parsed once per process in Lambda; each test starts from its own environment."""
    settings.load.cache_clear()
    yield
    settings.load.cache_clear()


# ------------------------------------------------------------------ pytest-xdist: tests that run last on each worker

# A test marked ``after_suite`` (tests/e2e/conftest.py) reads what the other tests of its process left on that
# process's local stack. Under xdist it is collected once per worker, with the worker in its id
# (``...[after-suite-gw1]``), and the scheduler below hands each copy to its own worker after everything else.
AFTER_SUITE_ID = re.compile(r"\[(?:.*-)?after-suite-(gw\d+)(?:-.*)?\]$")
AFTER_SUITE_SCOPE = "after-suite:"


class _AfterSuiteLast:
    """Mixin for xdist's scope schedulers (loadscope, loadfile): the after-suite tests of a worker are one work
    unit that only that worker gets, once no other unit is left to hand out. A worker runs what it is given in
    order, so they run after every other test that worker ran; a worker whose unit is handed out stops."""

    workqueue: OrderedDict[str, dict[str, bool]]

    def _split_scope(self, nodeid: str) -> str:
        match = AFTER_SUITE_ID.search(nodeid)
        if match:
            return AFTER_SUITE_SCOPE + match.group(1)
        scope: str = super()._split_scope(nodeid)  # type: ignore[misc]
        return scope

    def _assign_work_unit(self, node: Any) -> None:
        last = [scope for scope in self.workqueue if scope.startswith(AFTER_SUITE_SCOPE)]
        if len(last) == len(self.workqueue):
            own = AFTER_SUITE_SCOPE + node.gateway.id
            if own not in self.workqueue:
                node.shutdown()  # its after-suite tests are queued already: nothing may follow them
                return
            self.workqueue.move_to_end(own, last=False)
        else:
            for scope in last:
                self.workqueue.move_to_end(scope)
        super()._assign_work_unit(node)  # type: ignore[misc]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` and ``--dist loadscope`` with the after-suite tests last on each worker; other
    modes as xdist has them (tests/e2e/conftest.py refuses to run after-suite tests under those)."""
    from xdist.scheduler import LoadFileScheduling, LoadScopeScheduling

    base = {"loadfile": LoadFileScheduling, "loadscope": LoadScopeScheduling}.get(config.getvalue("dist"))
    if base is None:
        return None
    scheduler = type(f"AfterSuiteLast{base.__name__}", (_AfterSuiteLast, base), {})
    return scheduler(config, log)
