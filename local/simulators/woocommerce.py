"""A stateful WooCommerce store for the calls refundflow makes, on the REST API v3's own paths (``/wp-json/wc/v3``).

Mounted by the local stack at ``/_sandbox/woocommerce``; the connector's base address is
``{sandbox}/woocommerce/wp-json/wc/v3`` (a store's ``https://<store>/wp-json/wc/v3``). No official OpenAPI file of the
REST API exists (routes describe themselves through ``OPTIONS``), so requests are held to the documented fields
(woocommerce.github.io/woocommerce-rest-api-docs "Orders", "Order notes", "Order refunds", "Webhooks") and to the
v3 order refunds controller and ``wc_create_refund`` in github.com/woocommerce/woocommerce:

- HTTP Basic with a REST API key (``consumer_key:consumer_secret``); none is a 401 ``woocommerce_rest_cannot_view``,
  a wrong one a 401 ``woocommerce_rest_authentication_error``; every error is WordPress REST's
  ``{"code", "message", "data": {"status"}}``;
- ``GET /orders/{id}`` and ``PUT /orders/{id}`` (``meta_data`` ``[{key, value, id?}]``, ``status``): an unknown order
  is a 404 ``woocommerce_rest_shop_order_invalid_id``; a field of the wrong type a 400 ``rest_invalid_param``;
  a field this simulator does not model is refused the same way (WordPress would ignore it: refusing it catches a
  connector's typo);
- ``POST /orders/{id}/refunds`` ``{amount (string), reason, refunded_by, meta_data, line_items, api_refund (default
  true), api_restock}``: a negative amount is a 400 ``woocommerce_rest_invalid_order_refund``; zero or more than is
  left to refund a 500 ``woocommerce_rest_cannot_create_order_refund`` "Invalid refund amount."; with
  ``api_refund`` the order's gateway refunds inside the call: a gateway without refunds (``cod``, ``bacs``,
  ``cheque``) or a refusal (``refuse_gateway``) deletes the refund and answers that 500 with the gateway's words.
  No idempotency: the same POST twice makes two refunds. A full refund moves the order to ``refunded``;
- ``GET /orders/{id}/refunds`` (``page``, ``per_page`` 1 to 100, ``X-WP-Total`` / ``X-WP-TotalPages``), newest first,
  and ``GET /orders/{id}/refunds/{rid}``;
- ``GET /orders/{id}/notes`` (``type``: ``any``, ``customer``, ``internal``) and ``POST /orders/{id}/notes``
  ``{note (required), customer_note, added_by_user}``: a missing note is a 400 ``rest_missing_callback_param``;
- webhooks (topic ``order.updated``, the order as ``GET /orders/{id}`` shows it) after every change of an order (a
  refund, a PUT, what a shop manager does), signed like ``WC_Webhook::deliver``: ``X-WC-Webhook-Signature`` =
  base64(HMAC-SHA256(secret, body)), ``X-WC-Webhook-Source`` (the store's home URL), ``-Topic``, ``-Resource``,
  ``-Event``, ``-ID``, ``-Delivery-ID`` (an MD5 of the webhook id and the current second, as ``wp_hash`` makes it);
  never resent after a failure (WooCommerce counts failures and disables the webhook instead); ``ping()`` posts
  the unsigned form body ``webhook_id=<id>`` a new webhook sends.

What a shop manager does (``agent_action``) sets the order's refund request meta fields as the default mapping reads
them; ``report_return`` is a returns plugin (or the shop manager) saying where the goods are (WooCommerce core has no
returns: ``_refund_return_status`` and ``_refund_return_at``, stored as given, as WordPress stores any meta value);
``admin_refund`` is a refund made in wp-admin (no reference of ours; ``refunded_payment`` false for "Refund
manually"). Not modelled: order creation and checkout (orders are seeded paid), line items and taxes of refunds,
stock, coupons, OAuth 1.0a over plain HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response
from refundflow.money import exponent

API = "/wp-json/wc/v3"
DEFAULT_CONSUMER_KEY = "ck_local0000000000000000000000000000000000"
DEFAULT_CONSUMER_SECRET = "cs_local0000000000000000000000000000000000"
DEFAULT_WEBHOOK_SECRET = "woocommerce-local-webhook-secret-0123456789"
DEFAULT_STORE_URL = "https://shop.example.com/"
STATUS_META_KEY = "_refundflow_refund_status"
NO_REFUND_GATEWAYS = frozenset({"cod", "bacs", "cheque"})
REFUND_FIELDS = frozenset({"amount", "reason", "refunded_by", "meta_data", "line_items", "api_refund", "api_restock"})
ORDER_UPDATE_FIELDS = frozenset({"meta_data", "status"})
ROLE_OF = {"team_lead": "shop_manager", "agent": "support_agent", None: "subscriber"}
RETRY_AFTER_SECONDS = "2"
RETURN_STATUS_META_KEY = "_refund_return_status"
RETURN_AT_META_KEY = "_refund_return_at"
# where a refund parked until its goods are back is (the packaged policy asks an agent; a wait_for_return rule waits)
WAITING_FOR_GOODS = frozenset({"PENDING_APPROVAL", "AWAITING_RETURN"})


class WooCommerceError(Exception):
    def __init__(self, status: int, code: str, message: str, params: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.params = status, code, message, params

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        data: dict[str, Any] = {"status": self.status}
        if self.params:
            data["params"] = self.params
        return json_response(
            {"code": self.code, "message": self.message, "data": data}, self.status, dict(headers or {})
        )


def invalid_param(name: str, why: str) -> WooCommerceError:
    return WooCommerceError(400, "rest_invalid_param", f"Invalid parameter(s): {name}", {name: why})


class WooCommerceSimulator(Simulator):
    name = "woocommerce"
    TICKET_NOUN = "order"
    # Where a seeded ticket's order_id is: the order's own number (the delivery is the order, so intake names it)
    ORDER_ID_FIELD = "number"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"/orders/[0-9]+/refunds$"),
        "find_refund": ("GET", r"/orders/[0-9]+/refunds$"),
        "get_refund": ("GET", r"/orders/[0-9]+/refunds/[0-9]+$"),
        "get_payment": ("GET", r"/orders/[0-9]+$"),
        "read_ticket": ("GET", r"/orders/[0-9]+$"),
        "write_back": ("POST", r"/orders/[0-9]+/notes$"),
        "has_update": ("GET", r"/orders/[0-9]+/notes$"),
    }

    def __init__(
        self,
        *,
        consumer_key: str = DEFAULT_CONSUMER_KEY,
        consumer_secret: str = DEFAULT_CONSUMER_SECRET,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        store_url: str = DEFAULT_STORE_URL,
        webhook_id: int = 1,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.webhook_secret, self.store_url, self.webhook_id = webhook_secret, store_url, webhook_id
        self.now = now
        # WooCommerce does not resend a failed delivery
        self.webhooks = type(self.webhooks)(self.sign_webhook, retries=0)
        self.reset_state()
        self.route(f"{API}/orders/<int:order_id>", self._get_order, methods=["GET"])
        self.route(f"{API}/orders/<int:order_id>", self._put_order, methods=["PUT"])
        self.route(f"{API}/orders/<int:order_id>/refunds", self._list_refunds, methods=["GET"])
        self.route(f"{API}/orders/<int:order_id>/refunds", self._create_refund, methods=["POST"])
        self.route(f"{API}/orders/<int:order_id>/refunds/<int:refund_id>", self._get_refund, methods=["GET"])
        self.route(f"{API}/orders/<int:order_id>/notes", self._list_notes, methods=["GET"])
        self.route(f"{API}/orders/<int:order_id>/notes", self._create_note, methods=["POST"])
        self.route("/_control/payments", self._control_payment, methods=["POST"])
        self.route("/_control/orders/<int:order_id>/admin-refund", self._control_admin_refund, methods=["POST"])
        self.route("/_control/gateway", self._control_gateway, methods=["POST"])
        self.route("/_control/orders/<int:order_id>/return", self._control_return, methods=["POST"])
        self.route_ticket_controls()
        _ = self.url_map

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.orders: dict[int, dict[str, Any]] = {}
            self.refund_records: dict[int, dict[str, Any]] = {}
            self.notes: dict[int, list[dict[str, Any]]] = {}
            self.requests: dict[int, dict[str, Any]] = {}
            self.gateway_refusal: str | None = None
            # seven digits from the start: one id never appears inside another (the demo finds refunds by their id)
            self._next_id = 1_000_000

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        return {
            "X-WC-Webhook-Signature": base64.b64encode(
                hmac.new(secret.encode(), body, hashlib.sha256).digest()
            ).decode()
        }

    def inject_fault(self, operation: str, fault: str) -> None:
        """As the base, and a 429 carries Retry-After (a host's or a security plugin's limit)."""
        super().inject_fault(operation, fault)
        if fault == "transient":
            with self.lock:
                self.faults[-1].headers = {"Retry-After": RETRY_AFTER_SECONDS}

    def fault_response(self, fault: FaultRule) -> Response:
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        if status == 429:
            return WooCommerceError(429, "rest_too_many_requests", "Too many requests.").response(fault.headers)
        message = "There has been a critical error on this website."
        return WooCommerceError(status, "internal_server_error", message).response(fault.headers)

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith(API):
            refused = self._authenticate(request)
            if refused is not None:
                return refused
        try:
            return super().dispatch(request)
        except WooCommerceError as error:
            return error.response()

    def not_found(self, request: Request) -> Response:
        return WooCommerceError(
            404, "rest_no_route", "No route was found matching the URL and request method."
        ).response()

    # ---------------------------------------------------------------- the sandbox (PaymentSandbox, TicketSandbox)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        return {
            "api": {"consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret},
            "verification": {"webhook_secrets": [self.webhook_secret], "store_urls": [self.store_url]},
        }

    def send_webhooks_to(self, url: str) -> None:
        self.webhooks.configure(url, self.webhook_secret)

    def seed_payment(
        self, amount_minor: int, currency: str, *, settled: bool = True, gateway: str = "stripe"
    ) -> dict[str, Any]:
        """A paid order of ``amount_minor`` (``settled`` has no meaning at WooCommerce: the gateway's business)."""
        order = self._new_order(amount_minor, currency, gateway=gateway)
        return {"provider": "woocommerce", "payment_id": str(order["id"]), "locator": {}}

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """WooCommerce refunds are decided inside their POST: nothing is left open. Returns the refund.

        Raises:
            KeyError: no such refund.
        """
        with self.lock:
            return dict(self.refund_records[int(provider_refund_id)])

    def order_refunds(self, order_id: str) -> list[dict[str, Any]]:
        """The refunds of one order, newest first (copies)."""
        with self.lock:
            order = self.orders[int(order_id)]
            return [
                json.loads(json.dumps(self.refund_records[rid])) for rid in sorted(order["_refund_ids"], reverse=True)
            ]

    def refunds(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(json.dumps(record)) for _, record in sorted(self.refund_records.items())]

    def refuse_gateway(self, message: str | None) -> None:
        """The gateway refuses every refund from now on with ``message`` (None: it refunds again)."""
        with self.lock:
            self.gateway_refusal = message

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A paid order (twice the requested amount, or 100.00) with the customer, its number (``order_id``) and the
        request's reason and payment fields as meta; the request itself is set by ``agent_action``.

        Raises:
            ValueError: an approver role the sandbox does not know, or an amount that is not one.
        """
        role = request.get("approver_role")
        if role not in ROLE_OF:
            raise ValueError(f"unknown approver role {role!r}")
        currency = str(request.get("currency") or "EUR")
        amount = request.get("amount")
        try:
            requested = _minor(str(amount), currency) if amount is not None else None
        except (InvalidOperation, ValueError) as error:
            raise ValueError(f"not an amount: {amount!r}") from error
        name = str(request.get("customer_name") or "Ada Lovelace").split(" ", 1)
        order = self._new_order(
            2 * requested if requested else 10_000,
            currency,
            number=str(request["order_id"]) if request.get("order_id") else None,
            billing={
                "first_name": name[0],
                "last_name": name[1] if len(name) > 1 else "",
                "email": request.get("customer_email") or "ada@example.com",
            },
        )
        meta = {
            "_refund_reason": request.get("reason"),
            "_refund_payment_provider": request.get("payment_provider"),
            "_refund_payment_id": request.get("payment_id"),
        }
        with self.lock:
            for key, value in meta.items():
                if value:
                    self._set_meta(order, key, str(value))
            self.requests[order["id"]] = {"amount": str(amount) if amount is not None else "full", "role": role}
        return str(order["id"])

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """What a shop manager does in the order's Custom Fields box: ``request`` sets ``_refund_requested`` (the
        seeded amount or ``full``), ``approve`` also ``_refund_approved_by`` and ``_refund_approver_role``,
        ``withdraw`` sets ``_refund_requested`` to ``cancel``; saving the order sends ``order.updated``.

        Raises:
            KeyError: an unknown order. ValueError: an unknown intent.
        """
        with self.lock:
            order = self._ticket(ticket_id)
            seeded = self.requests.get(order["id"], {"amount": "full", "role": "team_lead"})
            if intent == "withdraw":
                self._set_meta(order, "_refund_requested", "cancel")
            elif intent in {"request", "approve"}:
                self._set_meta(order, "_refund_requested", seeded["amount"])
                if intent == "approve":
                    self._set_meta(order, "_refund_approved_by", "7")
                    self._set_meta(order, "_refund_approver_role", ROLE_OF[seeded["role"]])
                else:
                    order["meta_data"] = [
                        entry
                        for entry in order["meta_data"]
                        if entry["key"] not in {"_refund_approved_by", "_refund_approver_role"}
                    ]
            else:
                raise ValueError(f"unknown intent {intent!r}")
            self._touch(order)
        self._notify(order["id"])

    def request_refund(self, order_id: str, amount: str = "full", approver_role: str | None = None) -> None:
        """A shop manager asks in an order (seeded with ``seed_payment``) for its own refund through WooCommerce:
        ``_refund_requested`` set to ``amount`` (and the approval fields for ``approver_role``); sends
        ``order.updated``.

        Raises:
            KeyError: an unknown order.
        """
        with self.lock:
            order = self._ticket(order_id)
            self._set_meta(order, "_refund_reason", "damaged")
            self._set_meta(order, "_refund_requested", amount)
            if approver_role is not None:
                self._set_meta(order, "_refund_approved_by", "7")
                self._set_meta(order, "_refund_approver_role", ROLE_OF[approver_role])
            self._touch(order)
        self._notify(order["id"])

    def report_return(self, order_id: str, status: str, at: str | None = None) -> None:
        """A returns plugin (or the shop manager in the Custom Fields box) saying where the order's goods are: sets
        ``_refund_return_status`` to ``status`` and, when given, ``_refund_return_at`` to ``at`` (both as given:
        WordPress keeps any meta value), saves the order and sends ``order.updated``.

        Raises:
            KeyError: an unknown order.
        """
        with self.lock:
            order = self._ticket(order_id)
            self._set_meta(order, RETURN_STATUS_META_KEY, status)
            if at is not None:
                self._set_meta(order, RETURN_AT_META_KEY, at)
            self._touch(order)
        self._notify(order["id"])

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        with self.lock:
            order = self._ticket(ticket_id)
            notes = self.notes.get(order["id"], [])
            labels = [entry["value"] for entry in order["meta_data"] if entry["key"] == STATUS_META_KEY]
            return {
                "notes": [note["note"] for note in notes if not note["customer_note"]],
                "public": [note["note"] for note in notes if note["customer_note"]],
                "labels": labels,
                "ticket": self._order_view(order),
            }

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: a refund made in wp-admin through the gateway (:meth:`admin_refund`); returns its id."""
        return str(self.admin_refund(int(payment_id), amount_minor)["id"])

    def admin_refund(self, order_id: int, amount_minor: int, *, through_gateway: bool = True) -> dict[str, Any]:
        """A refund made in wp-admin (no reference of ours), with its ``order.updated`` webhook; ``through_gateway``
        false is "Refund manually" (``refunded_payment`` false)."""
        with self.lock:
            order = self.orders[order_id]
            record = self._refund(
                order, amount_minor, reason="Customer called", refunded_payment=through_gateway, meta=[]
            )
        self._notify(order_id)
        return record

    def ping(self) -> int | None:
        """What saving a new webhook sends (``WC_Webhook::deliver_ping``): the unsigned body ``webhook_id=<id>``, none
        of the X-WC headers; WordPress posts the string body through cURL, whose default type is a form's. Returns
        the answer's status (WooCommerce shows anything but 200 as an error), None when no URL is set."""
        if not self.webhooks.url:
            return None
        import requests

        answer = requests.post(
            self.webhooks.url,
            data=f"webhook_id={self.webhook_id}",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "WooCommerce/10.3.0 Hookshot (WordPress/6.8)",
            },
            timeout=10,
        )
        return answer.status_code

    # ---------------------------------------------------------------- the REST API

    def _get_order(self, request: Request, order_id: int) -> Response:
        with self.lock:
            return json_response(self._order_view(self._order(order_id)))

    def _put_order(self, request: Request, order_id: int) -> Response:
        body = _json_object(request)
        unknown = sorted(set(body) - ORDER_UPDATE_FIELDS)
        if unknown:
            raise invalid_param(unknown[0], f"{unknown[0]} is not a field this store takes.")
        with self.lock:
            order = self._order(order_id)
            for entry in _meta_list(body.get("meta_data", [])):
                self._set_meta(order, entry["key"], entry["value"])
            if "status" in body:
                order["status"] = str(body["status"])
            self._touch(order)
            view = self._order_view(order)
        self._notify(order_id)
        return json_response(view)

    def _list_refunds(self, request: Request, order_id: int) -> Response:
        page, per_page = _int_arg(request, "page", 1, 1, 10_000), _int_arg(request, "per_page", 10, 1, 100)
        with self.lock:
            order = self._order(order_id)
            records = [self.refund_records[rid] for rid in sorted(order["_refund_ids"], reverse=True)]
        chunk = records[(page - 1) * per_page : page * per_page]
        pages = max(1, -(-len(records) // per_page))
        return json_response(chunk, headers={"X-WP-Total": str(len(records)), "X-WP-TotalPages": str(pages)})

    def _get_refund(self, request: Request, order_id: int, refund_id: int) -> Response:
        with self.lock:
            order = self._order(order_id)
            if refund_id not in order["_refund_ids"]:
                raise WooCommerceError(404, "woocommerce_rest_shop_order_refund_invalid_id", "Invalid ID.")
            return json_response(self.refund_records[refund_id])

    def _create_refund(self, request: Request, order_id: int) -> Response:
        body = _json_object(request)
        unknown = sorted(set(body) - REFUND_FIELDS)
        if unknown:
            raise invalid_param(unknown[0], f"{unknown[0]} is not a field of an order refund.")
        for name, kind in (("amount", str), ("reason", str), ("api_refund", bool), ("api_restock", bool)):
            if name in body and not isinstance(body[name], kind):
                raise invalid_param(name, f"{name} is not of type {'string' if kind is str else 'boolean'}.")
        meta = _meta_list(body.get("meta_data", []))
        with self.lock:
            if order_id not in self.orders:
                raise WooCommerceError(404, "woocommerce_rest_invalid_order_id", "Invalid order ID.")
            order = self.orders[order_id]
            try:
                amount = Decimal(body.get("amount", "0"))
            except InvalidOperation as error:
                raise WooCommerceError(
                    500, "woocommerce_rest_cannot_create_order_refund", "Invalid refund amount."
                ) from error
            if amount < 0:
                raise WooCommerceError(
                    400, "woocommerce_rest_invalid_order_refund", "Refund amount must be greater than zero."
                )
            currency = order["currency"]
            minor = (
                _minor(str(amount), currency)
                if amount == amount.quantize(Decimal(1).scaleb(-exponent(currency)))
                else -1
            )
            if minor <= 0 or minor > self._remaining(order):
                raise WooCommerceError(500, "woocommerce_rest_cannot_create_order_refund", "Invalid refund amount.")
            through_gateway = body.get("api_refund", True)
            if through_gateway and order["payment_method"] in NO_REFUND_GATEWAYS:
                raise WooCommerceError(
                    500,
                    "woocommerce_rest_cannot_create_order_refund",
                    "The payment gateway for this order does not support automatic refunds.",
                )
            if through_gateway and self.gateway_refusal:
                raise WooCommerceError(500, "woocommerce_rest_cannot_create_order_refund", self.gateway_refusal)
            record = self._refund(
                order, minor, reason=str(body.get("reason", "")), refunded_payment=through_gateway, meta=meta
            )
        self._notify(order_id)
        return json_response(record, 201)

    def _list_notes(self, request: Request, order_id: int) -> Response:
        kind = request.args.get("type", "any")
        if kind not in {"any", "customer", "internal"}:
            raise invalid_param("type", "type is not one of any, customer and internal.")
        with self.lock:
            self._order(order_id)
            notes = [
                note
                for note in reversed(self.notes.get(order_id, []))
                if kind == "any" or note["customer_note"] == (kind == "customer")
            ]
            return json_response(notes)

    def _create_note(self, request: Request, order_id: int) -> Response:
        body = _json_object(request)
        unknown = sorted(set(body) - {"note", "customer_note", "added_by_user"})
        if unknown:
            raise invalid_param(unknown[0], f"{unknown[0]} is not a field of an order note.")
        if not isinstance(body.get("note"), str) or not body["note"]:
            raise WooCommerceError(400, "rest_missing_callback_param", "Missing parameter(s): note", {"note": "note"})
        if not isinstance(body.get("customer_note", False), bool):
            raise invalid_param("customer_note", "customer_note is not of type boolean.")
        with self.lock:
            self._order(order_id)
            note = {
                "id": self._new_id(),
                "author": "shop manager" if body.get("added_by_user") else "system",
                "date_created": self._local_time(),
                "date_created_gmt": self._local_time(),
                "note": body["note"],
                "customer_note": bool(body.get("customer_note", False)),
            }
            self.notes.setdefault(order_id, []).append(note)
        return json_response(note, 201)

    # ---------------------------------------------------------------- control routes

    def _control_payment(self, request: Request) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        try:
            seeded = self.seed_payment(
                int(body["amount_minor"]), str(body["currency"]), gateway=str(body.get("gateway", "stripe"))
            )
        except (KeyError, ValueError) as error:
            return json_response({"error": f"amount_minor and currency are required: {error}"}, 400)
        return json_response(seeded, 201)

    def _control_admin_refund(self, request: Request, order_id: int) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        try:
            record = self.admin_refund(
                order_id, int(body["amount_minor"]), through_gateway=bool(body.get("through_gateway", True))
            )
        except KeyError:
            return json_response({"error": f"no order {order_id}, or no amount_minor"}, 404)
        return json_response(record, 201)

    def _control_return(self, request: Request, order_id: int) -> Response:
        """``{"status", "at"?}``: :meth:`report_return`; answers the order as the API shows it."""
        body = request.get_json(force=True, silent=True) or {}
        status, at = body.get("status"), body.get("at")
        if not isinstance(status, str) or not status or not isinstance(at, str | None):
            return json_response({"error": "status (a string) is required; at, when given, is a string"}, 400)
        try:
            self.report_return(str(order_id), status, at)
        except KeyError:
            return json_response({"error": f"no order {order_id}"}, 404)
        with self.lock:
            return json_response(self._order_view(self.orders[order_id]))

    def _control_gateway(self, request: Request) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        refusal = body.get("refuse")
        self.refuse_gateway(str(refusal) if refusal else None)
        return json_response({"refuse": self.gateway_refusal})

    # ---------------------------------------------------------------- state

    def _new_id(self) -> int:
        """WordPress post ids: orders, refunds and notes share one sequence."""
        with self.lock:
            self._next_id += 1
            return self._next_id

    def _local_time(self) -> str:
        return datetime.fromtimestamp(self.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S")

    def _new_order(
        self,
        amount_minor: int,
        currency: str,
        *,
        gateway: str = "stripe",
        number: str | None = None,
        billing: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            order_id = self._new_id()
            now = self._local_time()
            order: dict[str, Any] = {
                "id": order_id,
                "parent_id": 0,
                "number": number or str(order_id),
                "order_key": f"wc_order_{hashlib.sha256(str(order_id).encode()).hexdigest()[:13]}",
                "created_via": "checkout",
                "status": "processing",
                "currency": currency,
                "date_created": now,
                "date_created_gmt": now,
                "date_modified": now,
                "date_modified_gmt": now,
                "total": _decimal(amount_minor, currency),
                "customer_id": 0,
                "billing": {
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "email": "ada@example.com",
                    **(billing or {}),
                },
                "payment_method": gateway,
                "payment_method_title": "Credit card (Stripe)" if gateway == "stripe" else gateway,
                "transaction_id": f"ch_{order_id}",
                "date_paid": now,
                "date_paid_gmt": now,
                "meta_data": [],
                "_refund_ids": [],
                "_total_minor": amount_minor,
            }
            self.orders[order_id] = order
            return order

    def _ticket(self, ticket_id: str) -> dict[str, Any]:
        """Raises: KeyError: no such order."""
        if not ticket_id.isascii() or not ticket_id.isdigit() or int(ticket_id) not in self.orders:
            raise KeyError(ticket_id)
        return self.orders[int(ticket_id)]

    def _order(self, order_id: int) -> dict[str, Any]:
        if order_id not in self.orders:
            raise WooCommerceError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return self.orders[order_id]

    def _order_view(self, order: dict[str, Any]) -> dict[str, Any]:
        view = {key: value for key, value in order.items() if not key.startswith("_")}
        view["refunds"] = [
            {"id": rid, "reason": self.refund_records[rid]["reason"], "total": "-" + self.refund_records[rid]["amount"]}
            for rid in sorted(order["_refund_ids"], reverse=True)
        ]
        copied: dict[str, Any] = json.loads(json.dumps(view))
        return copied

    def _remaining(self, order: dict[str, Any]) -> int:
        refunded = sum(_minor(self.refund_records[rid]["amount"], order["currency"]) for rid in order["_refund_ids"])
        return int(order["_total_minor"]) - refunded

    def _refund(
        self, order: dict[str, Any], minor: int, *, reason: str, refunded_payment: bool, meta: list[dict[str, Any]]
    ) -> dict[str, Any]:
        refund_id = self._new_id()
        now = self._local_time()
        record = {
            "id": refund_id,
            "date_created": now,
            "date_created_gmt": now,
            "amount": _decimal(minor, order["currency"]),
            "reason": reason,
            "refunded_by": 1,
            "refunded_payment": refunded_payment,
            "meta_data": [{"id": self._new_id(), "key": entry["key"], "value": entry["value"]} for entry in meta],
            "line_items": [],
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
        }
        self.refund_records[refund_id] = record
        order["_refund_ids"].append(refund_id)
        if self._remaining(order) == 0:
            order["status"] = "refunded"
        self._touch(order)
        return dict(record)

    def _set_meta(self, order: dict[str, Any], key: str, value: Any) -> None:
        for entry in order["meta_data"]:
            if entry["key"] == key:
                entry["value"] = value
                return
        order["meta_data"].append({"id": self._new_id(), "key": key, "value": value})

    def _touch(self, order: dict[str, Any]) -> None:
        order["date_modified"] = order["date_modified_gmt"] = self._local_time()

    def _notify(self, order_id: int) -> None:
        """``order.updated``, signed as ``WC_Webhook::deliver`` signs it."""
        with self.lock:
            body = json.dumps(self._order_view(self.orders[order_id]), separators=(",", ":")).encode()
        delivery_id = hashlib.md5(f"{self.webhook_id}{int(self.now())}".encode()).hexdigest()
        headers = {
            "X-WC-Webhook-Source": self.store_url,
            "X-WC-Webhook-Topic": "order.updated",
            "X-WC-Webhook-Resource": "order",
            "X-WC-Webhook-Event": "updated",
            "X-WC-Webhook-ID": str(self.webhook_id),
            "X-WC-Webhook-Delivery-ID": delivery_id,
            "User-Agent": "WooCommerce/10.3.0 Hookshot (WordPress/6.8)",
        }
        self.webhooks.send(f"{order_id}:{delivery_id}", "order.updated", body, headers=headers)

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return WooCommerceError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.").response()
        try:
            key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            key, secret = "", ""
        if not hmac.compare_digest(key, self.consumer_key):
            return WooCommerceError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.").response()
        if not hmac.compare_digest(secret, self.consumer_secret):
            return WooCommerceError(
                401, "woocommerce_rest_authentication_error", "Consumer secret is invalid."
            ).response()
        return None


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError as error:
        raise WooCommerceError(400, "rest_invalid_json", "Invalid JSON body passed.") from error
    if not isinstance(body, dict):
        raise WooCommerceError(400, "rest_invalid_json", "Invalid JSON body passed.")
    return body


def _meta_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("key"), str) for entry in value
    ):
        raise invalid_param("meta_data", "meta_data[0][key] is a required property of meta_data[0].")
    return [{"key": entry["key"], "value": entry.get("value")} for entry in value]


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise invalid_param(name, f"{name} must be between {low} ({'inclusive'}) and {high} (inclusive)")
    return int(text)


def _decimal(minor: int, currency: str) -> str:
    digits = exponent(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"


def _minor(value: str, currency: str) -> int:
    return int(Decimal(value).scaleb(exponent(currency)))


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _demo_scenarios() -> list[Any]:
    """The payment platform's and the help desk's usual scenarios (an order paid through Stripe directly, named in
    the order's meta), and WooCommerce's own: a shop manager's request refunds the order through WooCommerce itself,
    a request that waits for its goods goes on when the returns plugin reports them received, and a refund made in
    wp-admin is recorded as made outside refundflow."""
    from local.client import TERMINAL
    from local.scenarios import (
        Outcome,
        Scenario,
        ScenarioContext,
        payment_scenarios,
        ticket_refund_id,
        ticket_scenarios,
        wait_for_notes,
        wait_until_stored,
    )

    def shop_managers_request(context: ScenarioContext, outcome: Outcome) -> None:
        simulator: WooCommerceSimulator = context.simulator
        order_id = simulator.seed_payment(6_000, "EUR")["payment_id"]
        refund_id = ticket_refund_id("woocommerce", order_id)
        outcome.refund_ids.append(refund_id)
        simulator.request_refund(order_id, "25.00")
        wait_until_stored(context, refund_id)
        refund = context.client.wait_for(refund_id, TERMINAL, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        held = [item for item in simulator.refunds() if str(item["id"]) == str(refund.get("provider_refund_id"))]
        outcome.check(len(held) == 1, f"{len(held)} refunds of order {order_id} at WooCommerce")
        outcome.check(bool(held) and held[0]["amount"] == "25.00", f"refunded {held[:1]}")
        view = wait_for_notes(context, order_id, lambda notes: any("Refund completed" in note for note in notes))
        outcome.check(any("completed" in str(label) for label in view["labels"]), f"labels {view['labels']}")
        outcome.notes.append(f"order {order_id}: {len(view['notes'])} private notes, labels {view['labels']}")

    def goods_back(context: ScenarioContext, outcome: Outcome) -> None:
        # a return by choice: the packaged policy holds it until the goods are back (return_not_received)
        simulator: WooCommerceSimulator = context.simulator
        order_id = simulator.seed_ticket(
            {
                "amount": "30.00",
                "currency": "EUR",
                "reason": "product_return",
                "order_id": f"WC-RET-{context.run_id}",
                "customer_email": f"goods-back.{context.run_id}@example.com",
                "customer_name": "Grace Hopper",
            }
        )
        refund_id = ticket_refund_id("woocommerce", order_id)
        outcome.refund_ids.append(refund_id)
        simulator.agent_action(order_id, "request")
        wait_until_stored(context, refund_id)
        waiting = context.client.wait_for(refund_id, {*WAITING_FOR_GOODS, *TERMINAL}, timeout=60)
        outcome.check(waiting["status"] in WAITING_FOR_GOODS, f"did not wait for its goods: {waiting['status']}")
        outcome.check(not simulator.order_refunds(order_id), "money moved before the goods were back")
        simulator.report_return(order_id, "received")
        refund = context.client.wait_for(refund_id, TERMINAL, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        steps = [(step["status"], step["source"]) for step in (refund.get("return") or {}).get("steps", [])]
        outcome.check(steps == [("received", "woocommerce")], f"return steps {steps}")
        held = [item for item in simulator.refunds() if str(item["id"]) == str(refund.get("provider_refund_id"))]
        outcome.check(bool(held) and held[0]["amount"] == "30.00", f"refunded {held[:1]}")
        outcome.notes.append(f"order {order_id}: waited {waiting['status']}, then {refund['status']}")

    def wp_admin_refund(context: ScenarioContext, outcome: Outcome) -> None:
        simulator: WooCommerceSimulator = context.simulator
        order_id = simulator.seed_payment(6_000, "EUR")["payment_id"]
        made = simulator.admin_refund(int(order_id), 1_500)
        from refundflow.domain.external import external_refund_id

        refund_id = external_refund_id("woocommerce", str(made["id"]))
        outcome.refund_ids.append(refund_id)
        wait_until_stored(context, refund_id)
        refund = context.client.refund(refund_id)
        outcome.check(refund.get("origin") == "external", f"origin {refund.get('origin')}")
        outcome.check(
            refund.get("amount") == {"minor_units": 1_500, "currency": "EUR"}, f"amount {refund.get('amount')}"
        )

    return [
        *payment_scenarios("woocommerce"),
        *ticket_scenarios("woocommerce"),
        Scenario(
            "a shop manager's request in the order",
            "COMPLETED through WooCommerce itself; a private note and the state meta field on the order",
            shop_managers_request,
        ),
        Scenario(
            "the goods are back: a waiting refund goes on",
            "waits for its goods, then COMPLETED through WooCommerce once _refund_return_status is received",
            goods_back,
        ),
        Scenario("a refund made in wp-admin", "recorded once as a refund of origin external", wp_admin_refund),
    ]
