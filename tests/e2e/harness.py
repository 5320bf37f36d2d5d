"""The end-to-end suite's view of the local stack.

- One stack per process (moto and the environment are process-global): :func:`acquire_stack` and
  :func:`release_stack` count users, so the e2e suite and the moto-patch integration test share one
  stack when they run in the same session, and the last user stops it and gives the environment back.
- :class:`E2EClient` is the integrator's client (``local.client``) plus what a tester of the sandboxes
  needs: their control routes (faults, webhook endpoint, recorded requests), Stripe webhooks signed
  like Stripe's, and raw deliveries.
- :class:`Orders` sets up paid orders (a Stripe payment and a Xero invoice) and refund requests, each
  with its own customer and reference, so tests never share a payment, a customer or a refund.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from local.client import TERMINAL, RefundflowClient
from local.stack import DevStack, LocalSettings, forget_process_caches, platform_secrets
from refundflow.ids import derive_refund_id

ACCOUNT_ID = "123456789012"
# The Stripe sandbox's webhook signing secret (what the local stack seeds into refundflow/webhooks/stripe).
STRIPE_WEBHOOK_SECRET: str = platform_secrets("stripe")["verification"]["webhook_secrets"][0]
# The e2e stack's waits: short enough for polling and books retries to happen inside a test.
E2E_SETTINGS = {
    "refund_outcome_wait_seconds": 5,
    "books_retry_wait_seconds": 1,
    "approval_escalation_seconds": 3600,
}

_lease_lock = threading.Lock()
_lease: dict[str, Any] = {"stack": None, "users": 0, "environment": None}


def acquire_stack() -> DevStack:
    """The process's local stack, started on first use."""
    with _lease_lock:
        if _lease["stack"] is None:
            _lease["environment"] = dict(os.environ)
            _lease["stack"] = DevStack(LocalSettings(api_port=0, aws_port=0, **E2E_SETTINGS)).start()
        _lease["users"] += 1
        stack: DevStack = _lease["stack"]
        return stack


def release_stack() -> None:
    """Stop the stack when its last user is done: moto forgets every resource (a later stack in this
    process creates them again) and the environment is what it was before the stack started."""
    with _lease_lock:
        _lease["users"] -= 1
        if _lease["users"] > 0 or _lease["stack"] is None:
            return
        stack: DevStack = _lease["stack"]
        try:
            stack.stop()
        finally:
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            os.environ.clear()
            os.environ.update(_lease["environment"])
            _lease["stack"] = None
            forget_process_caches()


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Run with some settings changed for the handlers of this process (they read them at first use,
    so the cached settings and the connectors built from them are dropped on the way in and out)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    forget_process_caches()
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forget_process_caches()


def would_be_refund_id(request: dict[str, Any]) -> str:
    """The id refundflow derives for a request (source system + reference), whether or not it was stored."""
    return derive_refund_id("refund-requests", f"{request['source']['system']}:{request['source']['reference']}")


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; its last value, or a TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout}s: {what or check}")
        time.sleep(interval)


def stripe_signature(body: bytes, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe computes it: HMAC-SHA256 over ``"<t>.<raw body>"``."""
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), str(at).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def stripe_refund_event(
    *,
    refund_id: str | None,
    payment_id: str,
    status: str = "succeeded",
    amount: int = 1000,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``refund.updated`` event as Stripe sends it (only the fields refundflow reads are essential)."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "livemode": False,
        "type": "refund.updated",
        "data": {
            "object": {
                "id": f"re_{uuid.uuid4().hex[:24]}",
                "object": "refund",
                "amount": amount,
                "currency": "eur",
                "status": status,
                "payment_intent": payment_id,
                "metadata": {"refund_id": refund_id} if refund_id else {},
            },
            "previous_attributes": {"status": "pending"},
        },
    }


class E2EClient(RefundflowClient):
    """The integrator's client plus the sandboxes' control routes."""

    # ------------------------------------------------------------------ sandbox control routes

    def control(self, platform: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.request(
            method, f"{self.api_url}/_sandbox/{platform}/_control{path}", timeout=self.timeout, **kwargs
        )
        response.raise_for_status()
        return response

    @contextmanager
    def faults(self, platform: str, *rules: dict[str, Any]) -> Iterator[None]:
        """Inject fault rules into a sandbox for the duration of the block (cleared on the way out)."""
        try:
            for rule in rules:
                self.control(platform, "POST", "/faults", json=rule)
            yield
        finally:
            self.control(platform, "DELETE", "/faults")

    @contextmanager
    def stripe_webhooks_stopped(self) -> Iterator[None]:
        """Stripe sends no webhooks in the block (as when the endpoint is misconfigured or Stripe is late)."""
        self.control("stripe", "POST", "/webhook-endpoint", json={"url": None, "secret": None})
        try:
            yield
        finally:
            self.control(
                "stripe",
                "POST",
                "/webhook-endpoint",
                json={"url": f"{self.api_url}/webhooks/stripe", "secret": STRIPE_WEBHOOK_SECRET},
            )

    def hold_stripe_refund(self, payment_id: str) -> dict[str, Any]:
        """Park the payment's (first) Stripe refund in ``requires_action`` as soon as it exists: still
        pending for refundflow, and no longer settled by the sandbox's timer, only by the test."""

        def created() -> list[dict[str, Any]]:
            return self.stripe_refunds(payment_id)

        [refund] = eventually(created, timeout=30, interval=0.02, what=f"a Stripe refund of {payment_id}")
        held = self.control("stripe", "POST", f"/refunds/{refund['id']}/status", json={"status": "requires_action"})
        document: dict[str, Any] = held.json()
        return document

    def stripe_requests(self, method: str, path_contains: str) -> list[dict[str, Any]]:
        """Requests the Stripe sandbox received (refundflow's and ours), oldest first."""
        seen: list[dict[str, Any]] = self.control("stripe", "GET", "/requests").json()["requests"]
        return [item for item in seen if item["method"] == method and path_contains in item["path"]]

    def stripe_refund_posts(self, payment_id: str) -> list[dict[str, Any]]:
        """The ``POST /v1/refunds`` requests that named ``payment_id``."""
        return [item for item in self.stripe_requests("POST", "/v1/refunds") if payment_id in item["body"]]

    def stripe_charge_refunded(self, payment_id: str) -> tuple[int, int]:
        """(captured, refunded) of the payment's charge, as Stripe reports them."""
        response = self.stripe("GET", f"/v1/payment_intents/{payment_id}", params={"expand[]": "latest_charge"})
        response.raise_for_status()
        charge = response.json()["latest_charge"]
        return int(charge["amount_captured"]), int(charge["amount_refunded"])

    # ------------------------------------------------------------------ refundflow's API, raw

    def post_signed(
        self,
        body: bytes | str,
        *,
        headers: dict[str, str] | None = None,
        path: str = "/refund-requests",
        source: str | None = None,
    ) -> requests.Response:
        """A delivery signed over ``body`` with a source system's secret (``source``, by default the one the body
        names, else the returns portal's); ``headers`` override the signed ones."""
        text = body.decode() if isinstance(body, bytes) else body
        signed = self.signed_headers(text, source=source)
        return self.post_raw(path, body, {**signed, **(headers or {})})

    def post_stripe_event(
        self, event: dict[str, Any], *, secret: str = STRIPE_WEBHOOK_SECRET, signature: str | None = None
    ) -> requests.Response:
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json", "Stripe-Signature": signature or stripe_signature(body, secret)}
        return self.post_raw("/webhooks/stripe", body, headers)

    def refund_or_none(self, refund_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"{self.api_url}/refunds/{refund_id}", timeout=self.timeout)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def wait_for_entry(
        self, refund_id: str, entry_type: str, *, count: int = 1, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The refund once its audit trail holds ``count`` entries of ``entry_type``."""

        def found() -> dict[str, Any] | None:
            refund = self.refund(refund_id)
            entries = [entry for entry in refund["timeline"] if entry["type"] == entry_type]
            return refund if len(entries) >= count else None

        document: dict[str, Any] = eventually(found, timeout=timeout, what=f"{count} x {entry_type} on {refund_id}")
        return document


@dataclass
class PaidOrder:
    payment_id: str
    invoice_id: str | None
    minor_units: int
    customer: str


class Orders:
    """Paid orders and refund requests with their own payment, customer and reference."""

    def __init__(self, client: E2EClient) -> None:
        self.client = client

    def paid(
        self, minor_units: int, *, payment_method: str = "pm_card_visa", invoice: bool = True, name: str = "order"
    ) -> PaidOrder:
        tag = uuid.uuid4().hex[:10]
        customer = f"{name}.{tag}@example.com"
        payment = self.client.create_payment(minor_units, "EUR", payment_method)
        invoice_id = None
        if invoice:
            document = self.client.create_invoice(
                f"{name} {tag}", f"Order {name} {tag}", Decimal(minor_units) / 100, "EUR", paid=True
            )
            invoice_id = str(document["InvoiceID"])
        return PaidOrder(payment_id=payment, invoice_id=invoice_id, minor_units=minor_units, customer=customer)

    @staticmethod
    def request(
        order: PaidOrder,
        *,
        amount: int | None = None,
        reason: str = "damaged",
        system: str = "returns-portal",
        reference: str | None = None,
        customer: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "payment": {"provider": "stripe", "payment_id": order.payment_id},
            "reason": reason,
            "customer": {"email": customer or order.customer, "name": "Robin Example"},
            "source": {"system": system, "reference": reference or f"RMA-{uuid.uuid4().hex[:12]}"},
            "order": {"order_id": f"ORD-{uuid.uuid4().hex[:12]}"},
        }
        if amount is not None:
            body["amount"] = {"minor_units": amount, "currency": "EUR"}
        if order.invoice_id:
            body["invoice"] = {"system": "xero", "invoice_id": order.invoice_id}
        body.update(extra)
        return body

    def submit(self, body: dict[str, Any]) -> str:
        response = self.client.request_refund(body)
        assert response.status_code == 202, response.text
        return str(response.json()["refund_id"])

    def settle(self, refund_id: str, statuses: set[str] = TERMINAL, timeout: float = 45.0) -> dict[str, Any]:
        """The refund once it reached one of ``statuses`` (by default: a final one)."""
        return self.client.wait_for(refund_id, statuses, timeout=timeout)
