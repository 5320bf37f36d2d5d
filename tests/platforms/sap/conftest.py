"""The SAP books connector wired to its simulator, served on port 0 (one server per module)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local.simulators.sap import SapSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.sap.connector import (
    AuthMode,
    CreditDocumentChoice,
    PendingPolicy,
    SapBooks,
    SapSession,
    default_token_url,
)
from tests.conformance.books_suite import BooksHarness
from tests.support.servers import serve_wsgi


class SecretStore:
    """The function's view of its secret; counts the reads that bypass caches."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = dict(value)
        self.fresh_reads = 0

    def load(self, force: bool) -> dict[str, Any]:
        self.fresh_reads += int(force)
        return dict(self.value)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SapSimulator, str]]:
    simulator = SapSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def sandbox(served: tuple[SapSimulator, str]) -> SapSimulator:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    return simulator


@pytest.fixture
def secret(sandbox: SapSimulator) -> SecretStore:
    return SecretStore(sandbox.local_secrets()["api"])


def make_books(
    url: str,
    secret: SecretStore,
    *,
    pending_policy: PendingPolicy = "wait",
    payment_methods: dict[str, str] | None = None,
    auth: AuthMode = "basic",
    clock: Callable[[], float] = time.time,
    return_refund_field: str = "PurchaseOrderByCustomer",
    credit_document: CreditDocumentChoice = "credit_memo_request",
    order_reason: str = "",
) -> SapBooks:
    base = f"{url}/sap/opu/odata/sap"
    token_url = default_token_url(base) if auth == "oauth2_client_credentials" else ""
    session = SapSession(
        load_secret=secret.load,
        http=HttpClient(platform="sap", base_url=base, timeout=(5.0, 30.0)),
        auth=auth,
        token_url=token_url,
        token_http=HttpClient(platform="sap", base_url=token_url or base, timeout=(5.0, 30.0)),
        clock=clock,
    )
    return SapBooks(
        session=session,
        pending_policy=pending_policy,
        payment_methods=payment_methods,
        return_refund_field=return_refund_field,
        credit_document=credit_document,
        order_reason=order_reason,
    )


@pytest.fixture
def books(served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore) -> SapBooks:
    return make_books(served[1], secret, payment_methods={"stripe:EUR": "S", "*:USD": "U"})


@pytest.fixture
def harness(books: SapBooks, sandbox: SapSimulator) -> BooksHarness:
    return BooksHarness(name="sap", connector=books, sandbox=sandbox, pays_out_split_cash=False)
