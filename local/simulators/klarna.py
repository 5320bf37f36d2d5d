"""A stateful Klarna sandbox for the Order Management calls refundflow makes, on Klarna's own paths.

Mounted by the local stack at ``/_sandbox/klarna``; the connector's base address is ``{sandbox}/klarna`` (Klarna's
playground ``https://api.playground.klarna.com``, live ``https://api.klarna.com``, and ``-na`` / ``-oc`` hosts per
region). What it holds to, as Klarna documents it (docs.klarna.com: "Refund orders and manage authorizations",
"Error codes and messages for Order Management", "Escalation and retry policy"; no official OpenAPI file of the
Order Management API is in ``../shared/contracts``, so requests are checked against the documented RefundObject):

- HTTP Basic auth with an API credential's username and password; orders belong to the merchant whose credential
  created them (another merchant's order is a 404 ``NO_SUCH_ORDER``); a missing or wrong credential is a 401 (the
  error body's code, ``UNAUTHORIZED``, is this simulator's choice: Klarna does not publish it);
- ``GET /ordermanagement/v1/orders/{order_id}``: ``order_id``, ``status`` (``AUTHORIZED``, ``CAPTURED``,
  ``CANCELLED``), ``purchase_currency``, ``order_amount``, ``original_order_amount``, ``captured_amount``,
  ``refunded_amount``, ``remaining_authorized_amount``, ``captures[]`` and ``refunds[]``;
- ``POST /ordermanagement/v1/orders/{order_id}/refunds``: a JSON RefundObject ``{refunded_amount (required, integer
  0 to 200000000 minor units), description (<= 255), reference (<= 255), order_lines (<= 1000)}``; a field the
  object does not define, or a value out of those bounds, is a 422 ``UNPROCESSABLE_ENTITY`` (a simulator strictness:
  a misspelt field fails loudly); the answer is ``201 Created`` with an empty body, the ``Refund-Id`` header and
  ``Location`` (the refund's URL). Klarna's business rules answer 403 ``REFUND_NOT_ALLOWED``: an order with no
  captures ("Order has no captures. Refund not possible", Klarna's message), a cancelled order, or a refund above
  what was captured and not yet refunded (that message is this simulator's wording);
- ``GET /ordermanagement/v1/orders/{order_id}/refunds/{refund_id}``: ``{refund_id, refunded_amount, refunded_at,
  description, reference, order_lines}``; an unknown refund is a 404 ``NOT_FOUND`` ("Refund ... cannot be found for
  order ...");
- ``Klarna-Idempotency-Key``: the first answer under a key is kept 24 hours and given again to any request under
  that key, whatever its body ("only the key matters"); a request under a key still being processed is a 409
  ``CONFLICT`` (Klarna documents 409 CONFLICT as "conflicts with the current state of the target resource"; that it
  is the answer to a concurrent repeat is this simulator's choice); keys are scoped to the merchant;
- errors ``{error_code, error_messages: [...], correlation_id}``; faults answer in the same shape (429
  ``TOO_MANY_REQUESTS``, 500 ``INTERNAL_SERVER_ERROR``, 503 ``TEMPORARILY_UNAVAILABLE``);
- a refund is made when it is answered: it has no status, and Klarna sends no webhook for it.

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/orders`` ``{"amount_minor", "currency", "captured"?: bool, "merchant"?}``: an order of that
  amount, captured in full (default) or only authorised;
- ``POST /_control/orders/{order_id}/cancel``: cancel an order (its refunds are refused from then on);
- ``GET /_control/objects``: orders and refunds.

Not modelled: order creation, captures as requests, order lines' arithmetic, refund allocation across captures,
return fees, B2B credit invoices.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response

DEFAULT_USERNAME = "PK00001_refundflowsim"
DEFAULT_PASSWORD = "klarna-simulator-shared-secret-0001"
ORDERS = "/ordermanagement/v1/orders"
KEY_TTL_SECONDS = 24 * 3600
MAX_REFUNDED_AMOUNT = 200_000_000
MAX_TEXT = 255
MAX_ORDER_LINES = 1000
REFUND_FIELDS = frozenset({"refunded_amount", "description", "reference", "order_lines"})
# Klarna's transaction currencies, every one in ISO 4217 minor units (two decimals).
CURRENCIES = frozenset(
    {"AUD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "HUF", "MXN", "NOK", "NZD", "PLN", "RON", "SEK", "USD"}
)
_FAULT_CODES = {
    429: ("TOO_MANY_REQUESTS", "Too many requests"),
    500: ("INTERNAL_SERVER_ERROR", "Unexpected server error"),
    502: ("TEMPORARILY_UNAVAILABLE", "Temporarily unavailable"),
    503: ("TEMPORARILY_UNAVAILABLE", "Temporarily unavailable"),
    504: ("TEMPORARILY_UNAVAILABLE", "Temporarily unavailable"),
}


class KlarnaError(Exception):
    """An answer in Klarna's error shape."""

    def __init__(self, status: int, code: str, *messages: str) -> None:
        super().__init__(code)
        self.status, self.code, self.messages = status, code, list(messages)

    def response(self) -> Response:
        return klarna_error(self.status, self.code, *self.messages)


def klarna_error(status: int, code: str, *messages: str) -> Response:
    return json_response(
        {"error_code": code, "error_messages": list(messages), "correlation_id": str(uuid.uuid4())}, status
    )


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Saved:
    status: int
    body: bytes
    headers: dict[str, str]
    created_at: float


class KlarnaSimulator(Simulator):
    """Klarna's Order Management refund surface: orders, refunds, idempotency keys, Basic auth."""

    name = "klarna"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"^/ordermanagement/v1/orders/[^/]+/refunds$"),
        "get_refund": ("GET", r"^/ordermanagement/v1/orders/[^/]+/refunds/[^/]+$"),
        "get_payment": ("GET", r"^/ordermanagement/v1/orders/[^/]+$"),
        # Klarna finds our refund by reading the order's refunds.
        "find_refund": ("GET", r"^/ordermanagement/v1/orders/[^/]+$"),
    }

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        public_url: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``credentials``: API username -> password (one merchant each). ``public_url``: where the simulator is
        reachable (for ``Location``); learnt from the first request when not given."""
        self.credentials = dict(credentials or {DEFAULT_USERNAME: DEFAULT_PASSWORD})
        self.public_url = public_url.rstrip("/") if public_url else None
        # While set to an unset Event, a keyed refund stays "being processed" (its key in flight) until it is set.
        self.processing_gate: threading.Event | None = None
        self._now = now
        self.orders: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, str] = {}
        self._keys: dict[tuple[str, str], _Saved] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._sequence = itertools.count()
        self._refund_order: dict[str, int] = {}
        super().__init__()
        self.route(f"{ORDERS}/<order_id>", self._api(self._get_order), methods=["GET"])
        self.route(f"{ORDERS}/<order_id>/refunds", self._create_refund, methods=["POST"])
        self.route(f"{ORDERS}/<order_id>/refunds/<refund_id>", self._api(self._get_refund), methods=["GET"])
        self.route("/_control/orders", self._control_orders, methods=["POST"])
        self.route("/_control/orders/<order_id>/cancel", self._control_cancel, methods=["POST"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])
        # Bind the routes now: the base builds its Map on first use, and two first requests at once race on it.
        _ = self.url_map

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.orders.clear()
            self._owners.clear()
            self._keys.clear()
            self._in_flight.clear()
            self._refund_order.clear()

    def dispatch(self, request: Request) -> Response:
        if self.public_url is None:
            self.public_url = (request.host_url.rstrip("/") + request.script_root).rstrip("/")
        return super().dispatch(request)

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure, in Klarna's error shape unless the rule brings its own body."""
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        code, message = _FAULT_CODES.get(status, ("UNEXPECTED_ERROR", "Unexpected server error"))
        response = klarna_error(status, code, message)
        response.headers.extend(fault.headers)
        return response

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/_control"):
            return super().not_found(request)
        return klarna_error(404, "NOT_FOUND", f"No route {request.method} {request.path}")

    # ---------------------------------------------------------------- PaymentSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's API secret; Klarna sends no webhooks, so intake verifies nothing for it."""
        username = next(iter(self.credentials))
        return {"api": {"username": username, "password": self.credentials[username]}, "verification": {}}

    def seed_payment(
        self, amount_minor: int, currency: str, *, settled: bool = True, merchant: str | None = None
    ) -> dict[str, Any]:
        """An order of ``amount_minor`` minor units, captured in full (``settled`` false: only authorised, the way
        an order stands before the goods are shipped). Returns ``{"provider": "klarna", "payment_id", "locator"}``.

        Raises:
            ValueError: not a Klarna currency, a non-positive amount, or an unknown merchant.
        """
        code = currency.upper()
        if code not in CURRENCIES:
            raise ValueError(f"{currency} is not a Klarna transaction currency")
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
            raise ValueError("amount_minor must be a positive integer")
        owner = merchant or next(iter(self.credentials))
        if owner not in self.credentials:
            raise ValueError(f"unknown merchant {owner}")
        order_id = str(uuid.uuid4())
        now = _timestamp(self._now())
        captures = []
        if settled:
            captures.append(
                {
                    "capture_id": str(uuid.uuid4()),
                    "captured_amount": amount_minor,
                    "captured_at": now,
                    "refunded_amount": 0,
                }
            )
        with self.lock:
            self.orders[order_id] = {
                "order_id": order_id,
                "status": "CAPTURED" if settled else "AUTHORIZED",
                "fraud_status": "ACCEPTED",
                "purchase_currency": code,
                "purchase_country": "SE" if code == "SEK" else "DE",
                "order_amount": amount_minor,
                "original_order_amount": amount_minor,
                "captured_amount": amount_minor if settled else 0,
                "refunded_amount": 0,
                "remaining_authorized_amount": 0 if settled else amount_minor,
                "created_at": now,
                "captures": captures,
                "refunds": [],
            }
            self._owners[order_id] = owner
        return {"provider": "klarna", "payment_id": order_id, "locator": {}}

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Klarna holds no refund open: a refund is made when it is answered.

        Raises:
            ValueError: always.
        """
        raise ValueError(f"Klarna refund {provider_refund_id} was made when it was answered; nothing to decide")

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund held, oldest first, each with its ``order_id`` (copies)."""
        with self.lock:
            found = [
                {**copy.deepcopy(refund), "order_id": order["order_id"]}
                for order in self.orders.values()
                for refund in order["refunds"]
            ]
            return sorted(found, key=lambda refund: self._refund_order[refund["refund_id"]])

    def cancel_order(self, order_id: str) -> None:
        """Cancel an order: Klarna refuses its refunds from then on.

        Raises:
            KeyError: no such order.
        """
        with self.lock:
            self.orders[order_id]["status"] = "CANCELLED"

    # ---------------------------------------------------------------- request plumbing

    def _merchant(self, request: Request) -> str:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        username = password = ""
        if scheme.lower() == "basic":
            try:
                username, _, password = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                username = password = ""
        if not username or self.credentials.get(username) != password:
            raise KlarnaError(401, "UNAUTHORIZED", "Invalid credentials")
        return username

    def _api(self, handler: Callable[..., tuple[int, Any]]) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: str) -> Response:
            try:
                merchant = self._merchant(request)
                status, body = handler(merchant, **arguments)
            except KlarnaError as error:
                return error.response()
            return json_response(body, status)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _owned(self, merchant: str, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None or self._owners.get(order_id) != merchant:
            raise KlarnaError(404, "NO_SUCH_ORDER", f"Order {order_id} cannot be found")
        return order

    # ---------------------------------------------------------------- the API

    def _get_order(self, merchant: str, order_id: str) -> tuple[int, Any]:
        with self.lock:
            return 200, copy.deepcopy(self._owned(merchant, order_id))

    def _get_refund(self, merchant: str, order_id: str, refund_id: str) -> tuple[int, Any]:
        with self.lock:
            order = self._owned(merchant, order_id)
            for refund in order["refunds"]:
                if refund["refund_id"] == refund_id:
                    return 200, copy.deepcopy(refund)
        raise KlarnaError(404, "NOT_FOUND", f"Refund {refund_id} cannot be found for order {order_id}")

    def _create_refund(self, request: Request, order_id: str) -> Response:
        try:
            merchant = self._merchant(request)
        except KlarnaError as error:
            return error.response()
        key = request.headers.get("Klarna-Idempotency-Key")
        if not key:
            return self._refund_response(merchant, order_id, request)
        scope = (merchant, key)
        with self.lock:
            saved = self._keys.get(scope)
            if saved is not None and self._now() - saved.created_at >= KEY_TTL_SECONDS:
                del self._keys[scope]
                saved = None
            if saved is not None:
                return Response(saved.body, status=saved.status, headers=saved.headers)
            if scope in self._in_flight:
                return klarna_error(409, "CONFLICT", "A request with this idempotency key is being processed")
            self._in_flight.add(scope)
        try:
            response = self._refund_response(merchant, order_id, request)
            gate = self.processing_gate
            if gate is not None:
                gate.wait(timeout=30)  # the key stays in flight: a repeat meanwhile gets the 409
            with self.lock:
                self._keys[scope] = _Saved(
                    response.status_code, response.get_data(), dict(response.headers), self._now()
                )
            return response
        finally:
            with self.lock:
                self._in_flight.discard(scope)

    def _refund_response(self, merchant: str, order_id: str, request: Request) -> Response:
        try:
            body = _refund_object(request)
            with self.lock:
                refund = self._refund(self._owned(merchant, order_id), body)
        except KlarnaError as error:
            return error.response()
        location = f"{self.public_url or 'https://api.playground.klarna.com'}{ORDERS}/{order_id}/refunds/"
        return Response(
            b"", status=201, headers={"Location": location + refund["refund_id"], "Refund-Id": refund["refund_id"]}
        )

    def _refund(self, order: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        amount = body["refunded_amount"]
        if order["status"] == "CANCELLED":
            raise KlarnaError(403, "REFUND_NOT_ALLOWED", "Order is cancelled. Refund not possible")
        if order["captured_amount"] <= 0:
            raise KlarnaError(403, "REFUND_NOT_ALLOWED", "Order has no captures. Refund not possible")
        left = order["captured_amount"] - order["refunded_amount"]
        if amount > left:
            raise KlarnaError(
                403,
                "REFUND_NOT_ALLOWED",
                f"Refunded amount {amount} is higher than the remaining captured amount {left}. Refund not possible",
            )
        refund: dict[str, Any] = {
            "refund_id": str(uuid.uuid4()),
            "refunded_amount": amount,
            "refunded_at": _timestamp(self._now()),
            **{field: body[field] for field in ("description", "reference", "order_lines") if field in body},
        }
        order["refunds"].append(refund)
        order["refunded_amount"] += amount
        self._refund_order[refund["refund_id"]] = next(self._sequence)
        return refund

    # ---------------------------------------------------------------- control

    def _control_orders(self, request: Request) -> Response:
        payload = request.get_json(force=True) or {}
        try:
            seeded = self.seed_payment(
                payload["amount_minor"],
                payload["currency"],
                settled=bool(payload.get("captured", True)),
                merchant=payload.get("merchant"),
            )
        except (KeyError, ValueError) as error:
            return json_response({"error": str(error)}, 400)
        return json_response(seeded, 201)

    def _control_cancel(self, request: Request, order_id: str) -> Response:
        try:
            self.cancel_order(order_id)
        except KeyError:
            return json_response({"error": f"no order {order_id}"}, 404)
        return json_response({"order_id": order_id, "status": "CANCELLED"})

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response({"orders": copy.deepcopy(list(self.orders.values())), "refunds": self.refunds()})


def _refund_object(request: Request) -> dict[str, Any]:
    """The request's RefundObject, checked as Klarna documents it.

    Raises:
        KlarnaError: 422 for a body that is not one.
    """
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError as error:
        raise KlarnaError(422, "UNPROCESSABLE_ENTITY", "The request body is not valid JSON") from error
    if not isinstance(body, dict):
        raise KlarnaError(422, "UNPROCESSABLE_ENTITY", "The request body must be a JSON object")
    unknown = sorted(set(body) - REFUND_FIELDS)
    if unknown:
        raise KlarnaError(422, "UNPROCESSABLE_ENTITY", f"Unknown fields {unknown}")
    amount = body.get("refunded_amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise KlarnaError(422, "UNPROCESSABLE_ENTITY", "refunded_amount is required and must be an integer")
    if not 0 <= amount <= MAX_REFUNDED_AMOUNT:
        raise KlarnaError(422, "UNPROCESSABLE_ENTITY", f"refunded_amount must be between 0 and {MAX_REFUNDED_AMOUNT}")
    for field in ("description", "reference"):
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise KlarnaError(
                422, "UNPROCESSABLE_ENTITY", f"The size of the {field} value must be between 0 and {MAX_TEXT}"
            )
    lines = body.get("order_lines")
    if lines is not None and (
        not isinstance(lines, list) or len(lines) > MAX_ORDER_LINES or not all(isinstance(line, dict) for line in lines)
    ):
        raise KlarnaError(422, "UNPROCESSABLE_ENTITY", f"order_lines must be at most {MAX_ORDER_LINES} objects")
    return body


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client, not the simulator's users)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _demo_scenarios() -> list[Any]:
    from local.client import TERMINAL
    from local.scenarios import Outcome, Scenario, ScenarioContext, payment_scenarios

    def answer_lost(context: ScenarioContext, outcome: Outcome) -> None:
        # Klarna makes the refund, then the answer is a 500: the refund function cannot tell, looks our refund up
        # by its reference among the order's refunds, and finds it; nothing is sent twice.
        payment = context.simulator.seed_payment(4_500, "EUR")
        context.simulator.add_fault(
            FaultRule(method="POST", path=r"^/ordermanagement/v1/orders/[^/]+/refunds$", when="after")
        )
        refund_id = context.submit(outcome, context.request("answer-lost", payment))
        refund = context.client.wait_for(refund_id, TERMINAL | {"NEEDS_ATTENTION"}, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        ours = [held for held in context.simulator.refunds() if held.get("reference") == refund_id]
        outcome.check(len(ours) == 1, f"{len(ours)} Klarna refunds carry {refund_id}: paid more than once?")

    # Klarna holds no refund open: no asynchronous scenarios.
    return [
        *payment_scenarios("klarna", async_seed=None, unknown_outcome=None),
        Scenario(
            "answer lost after Klarna refunded (500 after the work)",
            "COMPLETED: found by our reference among the order's refunds; one refund at Klarna",
            answer_lost,
            exclusive=True,
        ),
    ]
