"""One Zoho CRM simulator served per module (its workflow webhook pointed at a recorder), and connectors on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests

from local.simulators.zoho_crm import ZohoCrmSimulator
from refundflow.connectors.http import HttpClient
from refundflow.connectors.zoho import ZohoTokenSource
from refundflow.platforms.zoho_crm.connector import ZohoCrmRecords
from tests.support.servers import DeliveryRecorder, serve_wsgi

WEBHOOK_TOKEN = "zoho-crm-conformance-webhook-token-0123456789"


class Clock:
    """The connector's clock (token expiry), moved by tests."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ZohoCrmSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = ZohoCrmSimulator(webhook_token=WEBHOOK_TOKEN)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def records(
    url: str,
    secret: Mapping[str, Any],
    *,
    clock: Callable[[], float] | None = None,
    **options: Any,
) -> ZohoCrmRecords:
    """A connector on the simulator at ``url`` with ``secret`` (the API secret), short timeouts."""
    timeout = (1.0, 1.5)
    tokens = ZohoTokenSource(
        accounts_base=f"{url}/accounts",
        load_secret=lambda force: dict(secret),
        platform="zoho_crm",
        title="Zoho CRM",
        http=HttpClient(platform="zoho_crm", base_url=f"{url}/accounts", timeout=timeout),
        clock=clock or time.time,
    )
    http = HttpClient(platform="zoho_crm", base_url=f"{url}/crm/v8", timeout=timeout)
    return ZohoCrmRecords(tokens=tokens, http=http, **options)


@pytest.fixture
def served(servers: tuple[ZohoCrmSimulator, str, DeliveryRecorder]) -> tuple[ZohoCrmSimulator, str, DeliveryRecorder]:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return simulator, url, receiver
