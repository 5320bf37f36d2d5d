"""A stateful Shopify sandbox: the GraphQL Admin API's order and refund surface, and the webhooks a shop sends.

What it speaks (shopify.dev/docs/api/admin-graphql, the version in the path):
- ``POST /admin/api/<YYYY-MM>/graphql.json`` with ``{query, variables}`` and ``X-Shopify-Access-Token`` (else 401
  ``{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}``); the document is
  parsed with graphql-core (a syntax error is a top-level error, as Shopify answers it);
- the root fields ``order(id:)``, ``node(id:)`` (a Refund) and ``refundCreate(input:)``; every answer is cut to the
  document's selection set (aliases, ``__typename``, inline fragments);
- ``refundCreate``: ``RefundInput`` and ``OrderTransactionInput`` fields only (another is a top-level variable
  error naming it, like Shopify's ``problems``), REFUND transactions against a SALE/CAPTURE of the order with its
  gateway, at most what is left of each unless ``allowOverRefunding``; refusals as ``userErrors {field message}``;
  ``@idempotent(key:)`` required from version 2026-04 (Shopify's changelog of 2025-12-12): the same key with the same
  input answers the first refund again, with other input it is a top-level ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``,
  while the first is being made ``IDEMPOTENCY_CONCURRENT_REQUEST`` (these two code names are this sandbox's: the
  page naming Shopify's own could not be read);
- throttling: a top-level ``Throttled`` error (``extensions.code: THROTTLED``) with ``extensions.cost``
  (``requestedQueryCost``, ``throttleStatus {maximumAvailable, currentlyAvailable, restoreRate}``), HTTP 200;
- refunds of a Shopify Payments order are ``SUCCESS`` at once; an order seeded with ``refund_status="PENDING"``
  keeps its refunds pending until ``settle_refund``; ``"FAILURE"`` fails them;
- webhooks as Shopify sends them: the REST-shaped refund on ``refunds/create``, with ``X-Shopify-Topic``,
  ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the body with the app's client secret), ``X-Shopify-Shop-Domain``,
  ``X-Shopify-Webhook-Id`` (kept on every retry), ``X-Shopify-API-Version``, ``X-Shopify-Triggered-At``; a refund made
  "in the Shopify admin" (``admin_refund``) is sent the same way, without our note.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from graphql import parse
from graphql.error import GraphQLSyntaxError
from graphql.language import (
    BooleanValueNode,
    EnumValueNode,
    FieldNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
)
from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, GraphQLSimulator, StoredResponse, json_response
from refundflow.money import exponent

DEFAULT_ACCESS_TOKEN = "shpat_refundflow0sim0access0token0001"
DEFAULT_CLIENT_SECRET = "shpss_refundflow0sim0client0secret0001"
DEFAULT_SHOP = "refundflow-sim.myshopify.com"
SHOPIFY_PAYMENTS = "shopify_payments"
_VERSION = re.compile(r"^\d{4}-\d{2}$")
_IDEMPOTENCY_REQUIRED_FROM = "2026-04"
_REFUND_INPUT = frozenset(
    {
        "orderId",
        "note",
        "notify",
        "currency",
        "transactions",
        "refundLineItems",
        "shipping",
        "refundDuties",
        "refundMethods",
        "allowOverRefunding",
        "discrepancyReason",
        "processedAt",
    }
)
_TRANSACTION_INPUT = frozenset({"amount", "gateway", "kind", "orderId", "parentId"})
_LIVE = ("SUCCESS", "PENDING")
UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
OVER_REFUND_MESSAGE = "Refund amount is greater than the refundable amount of the transaction."


class TopLevelError(Exception):
    """An error Shopify answers in the top-level ``errors`` (no data)."""

    def __init__(self, message: str, *, code: str | None = None, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        extensions: dict[str, Any] = dict(self.extra)
        if self.code is not None:
            extensions["code"] = self.code
        return {"message": self.message, **({"extensions": extensions} if extensions else {})}


def hmac_signature(body: bytes, client_secret: str) -> str:
    return base64.b64encode(hmac.new(client_secret.encode(), body, hashlib.sha256).digest()).decode()


def _decimal(amount_minor: int, currency: str) -> str:
    digits = exponent(currency)
    return f"{Decimal(amount_minor).scaleb(-digits):.{digits}f}"


def _minor(value: Any, currency: str) -> int:
    """A Shopify Decimal in minor units. Raises: TopLevelError for another shape (a coercion error)."""
    digits = exponent(currency)
    text = str(value)
    pattern = rf"^\d{{1,15}}(\.\d{{1,{digits}}})?$" if digits else r"^\d{1,15}(\.0+)?$"
    if not re.match(pattern, text):
        raise TopLevelError(f"Variable $input of type RefundInput! was provided invalid value for amount ({text!r})")
    try:
        return int(Decimal(text).scaleb(digits))
    except InvalidOperation as error:  # pragma: no cover - the pattern admits decimals only
        raise TopLevelError("invalid Decimal") from error


def _money_set(amount_minor: int, currency: str) -> dict[str, Any]:
    money = {"amount": _decimal(amount_minor, currency), "currencyCode": currency}
    return {"presentmentMoney": dict(money), "shopMoney": dict(money)}


def select(value: Any, selection: SelectionSetNode | None) -> Any:
    """``value`` cut to ``selection`` as a GraphQL server answers it (aliases, __typename, inline fragments)."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [select(item, selection) for item in value]
    typename = value.get("__typename")
    answer: dict[str, Any] = {}
    for node in selection.selections:
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition.name.value if node.type_condition else None
            if condition is None or condition == typename or (condition == "Node" and typename):
                answer.update(select(value, node.selection_set))
        elif isinstance(node, FieldNode):
            key = node.alias.value if node.alias else node.name.value
            answer[key] = select(value.get(node.name.value), node.selection_set)
    return answer


# The part of the GraphQL Admin API's schema this sandbox serves: type -> field -> the field's type (None: a scalar or
# an enum). A field outside it is refused as Shopify refuses an unknown field (``undefinedField``), so a document the
# connector sends cannot ask for what the sandbox would silently leave out.
SCHEMA: Mapping[str, Mapping[str, str | None]] = {
    "QueryRoot": {"order": "Order", "node": "Node", "return": "Return"},
    "Mutation": {
        "refundCreate": "RefundCreatePayload",
        "orderUpdate": "OrderUpdatePayload",
        "tagsAdd": "TagsAddPayload",
        "tagsRemove": "TagsRemovePayload",
    },
    "Node": {"id": None},
    "Order": {
        "id": None,
        "name": None,
        "email": None,
        "note": None,
        "tags": None,
        "createdAt": None,
        "presentmentCurrencyCode": None,
        "customer": "Customer",
        "transactions": "OrderTransaction",
        "refunds": "Refund",
        "returns": "ReturnConnection",
    },
    "Customer": {"displayName": None, "email": None},
    "OrderTransaction": {
        "id": None,
        "kind": None,
        "status": None,
        "gateway": None,
        "authorizationCode": None,
        "errorCode": None,
        "amountSet": "MoneyBag",
        "parentTransaction": "OrderTransaction",
        "shopifyPaymentsSet": "ShopifyPaymentsTransactionSet",
    },
    "ShopifyPaymentsTransactionSet": {"refundSet": "ShopifyPaymentsRefundSet"},
    "ShopifyPaymentsRefundSet": {"acquirerReferenceNumber": None},
    "MoneyBag": {"presentmentMoney": "MoneyV2", "shopMoney": "MoneyV2"},
    "MoneyV2": {"amount": None, "currencyCode": None},
    "Refund": {
        "id": None,
        "note": None,
        "createdAt": None,
        "order": "Order",
        "totalRefundedSet": "MoneyBag",
        "transactions": "OrderTransactionConnection",
    },
    "OrderTransactionConnection": {"nodes": "OrderTransaction"},
    "Return": {
        "id": None,
        "name": None,
        "status": None,
        "createdAt": None,
        "closedAt": None,
        "order": "Order",
        "returnLineItems": "ReturnLineItemTypeConnection",
    },
    "ReturnConnection": {"nodes": "Return"},
    "ReturnLineItemTypeConnection": {"nodes": "ReturnLineItemType"},
    "ReturnLineItemType": {
        "id": None,
        "quantity": None,
        "processedQuantity": None,
        "unprocessedQuantity": None,
        "returnReason": None,
    },
    "ReturnLineItem": {
        "id": None,
        "quantity": None,
        "processedQuantity": None,
        "unprocessedQuantity": None,
        "returnReason": None,
        "fulfillmentLineItem": "FulfillmentLineItem",
    },
    "FulfillmentLineItem": {"id": None, "lineItem": "LineItem"},
    "LineItem": {"id": None, "sku": None, "name": None, "discountedUnitPriceAfterAllDiscountsSet": "MoneyBag"},
    "UserError": {"field": None, "message": None},
    "RefundCreatePayload": {"refund": "Refund", "order": "Order", "userErrors": "UserError"},
    "OrderUpdatePayload": {"order": "Order", "userErrors": "UserError"},
    "TagsAddPayload": {"node": "Node", "userErrors": "UserError"},
    "TagsRemovePayload": {"node": "Node", "userErrors": "UserError"},
}


def undefined_fields(selection: SelectionSetNode, type_name: str) -> list[TopLevelError]:
    """Every field of ``selection`` its type does not have, as Shopify's ``undefinedField`` errors."""
    errors: list[TopLevelError] = []
    fields = SCHEMA.get(type_name, {})
    for node in selection.selections:
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition.name.value if node.type_condition else type_name
            if condition not in SCHEMA:
                errors.append(TopLevelError(f"No such type {condition}, so it can't be a fragment condition"))
                continue
            errors += undefined_fields(node.selection_set, condition)
        elif isinstance(node, FieldNode):
            name = node.name.value
            if name == "__typename":
                continue
            if name not in fields:
                errors.append(
                    TopLevelError(
                        f"Field '{name}' doesn't exist on type '{type_name}'",
                        code="undefinedField",
                        extra={"typeName": type_name, "fieldName": name},
                    )
                )
                continue
            child = fields[name]
            if node.selection_set is not None and child is not None:
                errors += undefined_fields(node.selection_set, child)
    return errors


class ShopifySimulator(GraphQLSimulator):
    """Orders, their transactions and refunds, and the webhooks a shop sends about refunds."""

    name = "shopify"
    # One endpoint for everything: a fault names the GraphQL root field (``/graphql.json#<field>``).
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"/graphql\.json#refundCreate$"),
        "get_refund": ("POST", r"/graphql\.json#node$"),
        "get_payment": ("POST", r"/graphql\.json#order$"),
        "find_refund": ("POST", r"/graphql\.json#order$"),
        "read_ticket": ("POST", r"/graphql\.json#return$"),
        "has_update": ("POST", r"/graphql\.json#return$"),
        "write_back": ("POST", r"/graphql\.json#orderUpdate$"),
    }
    TICKET_NOUN: ClassVar[str] = "return"
    # Shopify answers a throttled query with HTTP 200 and a THROTTLED error (see fault_response).
    TRANSIENT_STATUS: ClassVar[int] = 200

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        shop_domain: str = DEFAULT_SHOP,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.access_token = access_token
        self.client_secret = client_secret
        self.shop_domain = shop_domain
        self._now = now
        self.orders: dict[str, dict[str, Any]] = {}
        self.refund_objects: dict[str, dict[str, Any]] = {}
        self.returns: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self._next_id = 1000
        super().__init__()
        self.route("/admin/api/<version>/graphql.json", self._graphql, methods=["POST"])
        self.route("/_control/orders", self._control_seed, methods=["POST"])
        self.route("/_control/refunds/<number>/settle", self._control_settle, methods=["POST"])
        self.route("/_control/refunds/<number>/acquirer-reference", self._control_acquirer_reference, methods=["POST"])
        self.route("/_control/orders/<number>/admin-refund", self._control_admin_refund, methods=["POST"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])
        self.route_ticket_controls()

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.orders.clear()
            self.refund_objects.clear()
            self.returns.clear()
            self.sent.clear()

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        return {"X-Shopify-Hmac-Sha256": hmac_signature(body, secret)}

    def is_graphql(self, request: Request) -> bool:
        return request.path.endswith("/graphql.json")

    def fault_response(self, fault: FaultRule) -> Response:
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        if status in (200, 429):
            return json_response(self.throttled_body(), status, headers=fault.headers)
        error = TopLevelError(
            "Internal error. Looks like something went wrong on our end.",
            code="INTERNAL_SERVER_ERROR",
            extra={"requestId": str(uuid.uuid4())},
        )
        return json_response({"errors": [error.body()]}, status, headers=fault.headers)

    @staticmethod
    def throttled_body(requested: int = 12, available: int = 2, restore_rate: float = 5.0) -> dict[str, Any]:
        """A throttled answer: the bucket holds ``available`` points, the query costs ``requested``."""
        return {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
                }
            ],
            "extensions": {
                "cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": None,
                    "throttleStatus": {
                        "maximumAvailable": 1000.0,
                        "currentlyAvailable": available,
                        "restoreRate": restore_rate,
                    },
                }
            },
        }

    def not_found(self, request: Request) -> Response:
        return json_response({"errors": "Not Found"}, 404)

    # ---------------------------------------------------------------- PaymentSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        return {
            "api": {"access_token": self.access_token},
            "verification": {"client_secrets": [self.client_secret], "shop_domain": self.shop_domain},
        }

    def send_webhooks_to(self, url: str) -> None:
        self.webhooks.configure(url, self.client_secret)

    def seed_payment(
        self,
        amount_minor: int,
        currency: str,
        *,
        settled: bool = True,
        gateway: str = SHOPIFY_PAYMENTS,
        refund_status: str = "SUCCESS",
        authorization_code: str | None = None,
        name: str | None = None,
        email: str | None = "ada@example.com",
        customer_name: str | None = "Ada Lovelace",
    ) -> dict[str, Any]:
        """A paid order of ``amount_minor`` ISO minor units (one SALE transaction of ``gateway``; ``settled`` false:
        an authorization only, nothing captured). Returns ``{"provider": "shopify", "payment_id": <order gid>,
        "locator": {}}``."""
        if refund_status not in ("SUCCESS", "PENDING", "FAILURE"):
            raise ValueError(f"unknown refund_status {refund_status!r}")
        with self.lock:
            number = self._number()
            order_id = f"gid://shopify/Order/{number}"
            transaction = {
                "__typename": "OrderTransaction",
                "id": f"gid://shopify/OrderTransaction/{self._number()}",
                "kind": "SALE" if settled else "AUTHORIZATION",
                "status": "SUCCESS",
                "gateway": gateway,
                "authorizationCode": authorization_code or f"ch_sim{number}",
                "errorCode": None,
                "amountSet": _money_set(amount_minor, currency),
                "parentTransaction": None,
            }
            self.orders[order_id] = {
                "__typename": "Order",
                "id": order_id,
                "name": name or f"#{number}",
                "email": email,
                "note": None,
                "tags": [],
                "customer": {"displayName": customer_name} if customer_name else None,
                "presentmentCurrencyCode": currency,
                "transactions": [transaction],
                "refundIds": [],
                "refundStatus": refund_status,
                "createdAt": self._stamp(),
            }
        return {"provider": "shopify", "payment_id": order_id, "locator": {}}

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Decide a pending refund: its REFUND transactions become SUCCESS or FAILURE (Shopify sends no
        ``refunds/create`` again: the refund's function polls it)."""
        with self.lock:
            refund = self.refund_objects.get(provider_refund_id)
            if refund is None:
                raise KeyError(provider_refund_id)
            for transaction in refund["transactions"]["nodes"]:
                transaction["status"] = "SUCCESS" if succeeded else "FAILURE"
                transaction["errorCode"] = None if succeeded else "GENERIC_ERROR"
            return copy.deepcopy(refund)

    def assign_acquirer_reference(self, provider_refund_id: str) -> dict[str, Any]:
        """The card network assigns the Shopify Payments refund's SUCCESS transactions their ARN
        (``shopifyPaymentsSet.refundSet.acquirerReferenceNumber``); Shopify sends no webhook for it.

        Raises:
            KeyError: no such refund.
            ValueError: no Shopify Payments REFUND transaction in SUCCESS without one.
        """
        with self.lock:
            refund = self.refund_objects[provider_refund_id]
            waiting = [
                item["shopifyPaymentsSet"]["refundSet"]
                for item in refund["transactions"]["nodes"]
                if item["status"] == "SUCCESS"
                and item.get("shopifyPaymentsSet")
                and item["shopifyPaymentsSet"]["refundSet"]["acquirerReferenceNumber"] is None
            ]
            if not waiting:
                raise ValueError(f"refund {provider_refund_id} has no Shopify Payments refund waiting for its ARN")
            for refund_set in waiting:
                refund_set["acquirerReferenceNumber"] = "74" + "".join(str(secrets.randbelow(10)) for _ in range(21))
            return copy.deepcopy(refund)

    def refunds(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(refund) for refund in self.refund_objects.values()]

    def order(self, order_id: str) -> dict[str, Any]:
        with self.lock:
            return self._public_order(self.orders[order_id])

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: a refund made by a person in the Shopify admin (:meth:`admin_refund`); returns its id."""
        order_id = payment_id if payment_id.startswith("gid://") else f"gid://shopify/Order/{payment_id}"
        return str(self.admin_refund(order_id, amount_minor)["id"])

    def admin_refund(self, order_id: str, amount_minor: int) -> dict[str, Any]:
        """A refund made by a person in the Shopify admin (no note of ours), told by ``refunds/create``."""
        with self.lock:
            order = self.orders[order_id]
            parent = next(item for item in order["transactions"] if item["kind"] in ("SALE", "CAPTURE"))
            refund = self._new_refund(order, [(parent, amount_minor)], note="Customer called, refunded by hand")
        self._notify_refund(refund)
        return refund

    # ---------------------------------------------------------------- TicketSandbox (a return is the ticket)

    REASONS: ClassVar[Mapping[str, str]] = {
        "damaged": "DEFECTIVE",
        "wrong_item": "WRONG_ITEM",
        "not_as_described": "NOT_AS_DESCRIBED",
        "changed_mind": "UNWANTED",
    }

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """An order paid through ``payment_provider``'s gateway (``shopify``: Shopify Payments, the order is the
        payment; another: that gateway with ``payment_id`` as its authorization code) and a REQUESTED return of one
        line worth ``amount`` (none: a line without a price). Returns the return's number (its ticket id)."""
        provider = str(request.get("payment_provider") or "shopify")
        currency = str(request.get("currency") or "EUR")
        amount = request.get("amount")
        minor = _minor(amount, currency) if amount is not None else 10_000
        seeded = self.seed_payment(
            max(minor, 1),
            currency,
            gateway=SHOPIFY_PAYMENTS if provider == "shopify" else provider,
            authorization_code=str(request.get("payment_id") or "") or None,
            name=str(request.get("order_id")) if request.get("order_id") else None,
            email=request.get("customer_email"),
            customer_name=request.get("customer_name"),
        )
        with self.lock:
            number = self._number()
            price = None if amount is None else {"presentmentMoney": {"amount": str(amount), "currencyCode": currency}}
            self.returns[f"gid://shopify/Return/{number}"] = {
                "__typename": "Return",
                "id": f"gid://shopify/Return/{number}",
                "name": f"{self.orders[seeded['payment_id']]['name']}-R1",
                "status": "REQUESTED",
                "createdAt": self._stamp(),
                "closedAt": None,
                "orderId": seeded["payment_id"],
                "returnLineItems": {
                    "nodes": [
                        {
                            "__typename": "ReturnLineItem",
                            "id": f"gid://shopify/ReturnLineItem/{self._number()}",
                            "quantity": 1,
                            "processedQuantity": 0,
                            "unprocessedQuantity": 1,
                            "returnReason": self.REASONS.get(str(request.get("reason")), "OTHER"),
                            "fulfillmentLineItem": {
                                "lineItem": {
                                    "sku": "SKU-SIM-1",
                                    "name": "Headphones",
                                    "discountedUnitPriceAfterAllDiscountsSet": price,
                                }
                            },
                        }
                    ]
                },
            }
        return str(number)

    def _return_of(self, ticket_id: str) -> dict[str, Any]:
        """Raises: KeyError: an unknown return."""
        number = ticket_id.rsplit("/", 1)[-1]
        return self.returns[f"gid://shopify/Return/{number}"]

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """What the merchant does with the return, and the webhook Shopify sends: ``approve`` processes it (every
        line confirmed back: ``returns/process``), ``request`` opens it again (``returns/reopen``), ``withdraw``
        declines it (``returns/decline``).

        Raises:
            KeyError: an unknown return. ValueError: an unknown intent.
        """
        with self.lock:
            found = self._return_of(ticket_id)
            if intent == "approve":
                found["status"] = "OPEN"
                for line in found["returnLineItems"]["nodes"]:
                    line["processedQuantity"], line["unprocessedQuantity"] = line["quantity"], 0
                topic = "returns/process"
            elif intent == "request":
                found["status"] = "OPEN"
                topic = "returns/reopen" if found["closedAt"] else "returns/approve"
            elif intent == "withdraw":
                found["status"] = "DECLINED"
                topic = "returns/decline"
            else:
                raise ValueError(f"unknown intent {intent!r}")
            payload = self.rest_return(found)
        self.send_topic(topic, payload)

    def process_return(self, ticket_id: str, *, close: bool = False) -> None:
        """The goods are back: every line processed (``returns/process``), and the return closed with ``close``
        (``returns/close``)."""
        with self.lock:
            found = self._return_of(ticket_id)
            for line in found["returnLineItems"]["nodes"]:
                line["processedQuantity"], line["unprocessedQuantity"] = line["quantity"], 0
            found["status"] = "CLOSED" if close else "OPEN"
            found["closedAt"] = self._stamp() if close else None
            payload = self.rest_return(found)
        self.send_topic("returns/close" if close else "returns/process", payload)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """The order's note paragraphs (staff-only), no public reply (a note is never sent to the customer), the
        ``refundflow:`` tags, and the return.

        Raises:
            KeyError: an unknown return.
        """
        with self.lock:
            found = self._return_of(ticket_id)
            order = self.orders[found["orderId"]]
            notes = [part for part in str(order["note"] or "").split("\n\n") if part]
            labels = [tag for tag in order["tags"] if tag.startswith("refundflow:")]
            return {"notes": notes, "public": [], "labels": labels, "ticket": self._public_return(found)}

    def rest_return(self, found: Mapping[str, Any]) -> dict[str, Any]:
        """The return as ``returns/*`` webhooks carry it (numeric ids, lower-case status)."""
        order_id = str(found["orderId"])
        return {
            "id": int(str(found["id"]).rsplit("/", 1)[1]),
            "admin_graphql_api_id": found["id"],
            "status": str(found["status"]).lower(),
            "order": {"id": int(order_id.rsplit("/", 1)[1]), "admin_graphql_api_id": order_id},
        }

    # ---------------------------------------------------------------- the API

    def _graphql(self, request: Request, version: str) -> Response:
        if not _VERSION.match(version):
            return json_response({"errors": "Not Found"}, 404)
        token = request.headers.get("X-Shopify-Access-Token", "")
        if not hmac.compare_digest(token.encode(), self.access_token.encode()):
            return json_response(UNAUTHORIZED, 401)
        try:
            body = json.loads(request.get_data())
            document = parse(body["query"])
            variables = body.get("variables") or {}
            if not isinstance(variables, dict):
                raise TypeError("variables must be an object")
        except GraphQLSyntaxError as failure:
            return self._errors([TopLevelError(failure.message)])
        except (ValueError, KeyError, TypeError) as failure:
            return json_response({"errors": {"query": [f"Required parameter missing or invalid: {failure}"]}}, 400)
        operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
        if len(operations) != 1:
            return self._errors([TopLevelError("An operation name is required when the document has several")])
        root = "Mutation" if operations[0].operation.value == "mutation" else "QueryRoot"
        unknown = undefined_fields(operations[0].selection_set, root)
        if unknown:
            return self._errors(unknown)
        data: dict[str, Any] = {}
        for node in operations[0].selection_set.selections:
            if not isinstance(node, FieldNode):
                continue
            key = node.alias.value if node.alias else node.name.value
            try:
                arguments = {item.name.value: self._value(item.value, variables) for item in node.arguments or ()}
                if node.name.value == "refundCreate":
                    answer = self._refund_create(node, arguments, variables, version)
                else:
                    answer = self._resolve(node.name.value, arguments)
                data[key] = select(answer, node.selection_set)
            except TopLevelError as error:
                return self._errors([error])
        return json_response({"data": data, "extensions": self._cost(1)})

    @staticmethod
    def _value(value: Any, variables: Mapping[str, Any]) -> Any:
        if isinstance(value, VariableNode):
            if value.name.value not in variables:
                raise TopLevelError(f"Variable ${value.name.value} is used but not provided")
            return variables[value.name.value]
        if isinstance(value, StringValueNode | EnumValueNode):
            return value.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, BooleanValueNode):
            return value.value
        raise TopLevelError("this sandbox takes object arguments as variables")

    def _resolve(self, field: str, arguments: Mapping[str, Any]) -> Any:
        with self.lock:
            if field == "order":
                order = self.orders.get(str(arguments.get("id") or ""))
                return None if order is None else self._public_order(order)
            if field == "node":
                refund = self.refund_objects.get(str(arguments.get("id") or ""))
                return None if refund is None else copy.deepcopy(refund)
            if field == "return":
                found = self.returns.get(str(arguments.get("id") or ""))
                return None if found is None else self._public_return(found)
            if field == "orderUpdate":
                return self._order_update(arguments.get("input"))
            if field in ("tagsAdd", "tagsRemove"):
                return self._tags(field, arguments)
        raise TopLevelError(f"Field '{field}' doesn't exist on type 'QueryRoot'", code="undefinedField")

    def _refund_create(
        self, node: FieldNode, arguments: Mapping[str, Any], variables: Mapping[str, Any], version: str
    ) -> dict[str, Any]:
        key = None
        for directive in node.directives or ():
            if directive.name.value == "idempotent":
                found = {item.name.value: self._value(item.value, variables) for item in directive.arguments or ()}
                key = found.get("key")
        if key is None and version >= _IDEMPOTENCY_REQUIRED_FROM:
            raise TopLevelError("The @idempotent directive is required for this mutation.", code="BAD_REQUEST")
        value = arguments.get("input")
        if key is None:
            return self._make_refund(value)
        fingerprint = self.idempotency.fingerprint(value)
        began = self.idempotency.begin("refundCreate", str(key))
        if began is False:
            raise TopLevelError(
                "A request with this idempotency key is in progress.", code="IDEMPOTENCY_CONCURRENT_REQUEST"
            )
        if isinstance(began, StoredResponse):
            if began.fingerprint != fingerprint:
                raise TopLevelError(
                    "The idempotency key was used with different parameters.", code="IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
                )
            return copy.deepcopy(began.body)
        stored: StoredResponse | None = None
        try:
            answer = self._make_refund(value)
            stored = StoredResponse(fingerprint, 200, copy.deepcopy(answer), {}, time.time())
            return answer
        finally:
            self.idempotency.finish("refundCreate", str(key), stored)

    def _make_refund(self, value: Any) -> dict[str, Any]:
        """refundCreate's payload: the refund, or userErrors. Raises: TopLevelError for input of another shape."""
        if not isinstance(value, dict):
            raise TopLevelError("Variable $input of type RefundInput! was provided invalid value")
        unknown = sorted(set(value) - _REFUND_INPUT)
        if unknown:
            raise TopLevelError(
                "Variable $input of type RefundInput! was provided invalid value",
                extra={
                    "problems": [
                        {"path": [name], "explanation": "Field is not defined on RefundInput"} for name in unknown
                    ]
                },
            )
        lines = value.get("transactions") or []
        if not isinstance(lines, list):
            raise TopLevelError("Variable $input of type RefundInput! was provided invalid value for transactions")
        for index, line in enumerate(lines):
            extra = sorted(set(line) - _TRANSACTION_INPUT) if isinstance(line, dict) else ["(not an object)"]
            if extra:
                raise TopLevelError(
                    "Variable $input of type RefundInput! was provided invalid value",
                    extra={
                        "problems": [
                            {
                                "path": ["transactions", index, name],
                                "explanation": "Field is not defined on OrderTransactionInput",
                            }
                            for name in extra
                        ]
                    },
                )
        with self.lock:
            order = self.orders.get(str(value.get("orderId") or ""))
            if order is None:
                return self._user_errors(["orderId"], "Order does not exist")
            currency = order["presentmentCurrencyCode"]
            if value.get("currency") not in (None, currency):
                return self._user_errors(["currency"], "Currency must match the presentment currency of the order")
            parts: list[tuple[dict[str, Any], int]] = []
            for index, line in enumerate(lines):
                parent = next((item for item in order["transactions"] if item["id"] == line.get("parentId")), None)
                if line.get("kind") != "REFUND":
                    return self._user_errors(["transactions", str(index), "kind"], "Kind is not supported for refunds")
                if parent is None or parent["kind"] not in ("SALE", "CAPTURE") or parent["status"] != "SUCCESS":
                    return self._user_errors(["transactions", str(index), "parentId"], "Parent transaction is invalid")
                if line.get("gateway") != parent["gateway"]:
                    return self._user_errors(["transactions", str(index), "gateway"], "Gateway must match the parent's")
                amount = _minor(line.get("amount"), currency)
                if amount <= 0:
                    return self._user_errors(["transactions", str(index), "amount"], "Amount must be greater than 0")
                left = self._left(parent, currency) - sum(share for item, share in parts if item is parent)
                if amount > left and not value.get("allowOverRefunding"):
                    return self._user_errors(["transactions", str(index), "amount"], OVER_REFUND_MESSAGE)
                parts.append((parent, amount))
            refund = self._new_refund(order, parts, note=value.get("note"))
        self._notify_refund(refund)
        return {"refund": copy.deepcopy(refund), "userErrors": [], "order": self._public_order(order)}

    # ---------------------------------------------------------------- state

    def _number(self) -> int:
        self._next_id += 1
        return self._next_id

    def _left(self, parent: Mapping[str, Any], currency: str) -> int:
        taken = _minor(parent["amountSet"]["presentmentMoney"]["amount"], currency)
        for refund in self.refund_objects.values():
            for item in refund["transactions"]["nodes"]:
                if (item["parentTransaction"] or {}).get("id") == parent["id"] and item["status"] in _LIVE:
                    taken -= _minor(item["amountSet"]["presentmentMoney"]["amount"], currency)
        return taken

    def _new_refund(
        self, order: dict[str, Any], parts: list[tuple[dict[str, Any], int]], *, note: str | None
    ) -> dict[str, Any]:
        currency = order["presentmentCurrencyCode"]
        number = self._number()
        transactions = [
            {
                "__typename": "OrderTransaction",
                "id": f"gid://shopify/OrderTransaction/{self._number()}",
                "kind": "REFUND",
                "status": order["refundStatus"],
                "gateway": parent["gateway"],
                "errorCode": "GENERIC_ERROR" if order["refundStatus"] == "FAILURE" else None,
                "amountSet": _money_set(amount, currency),
                "parentTransaction": {"id": parent["id"]},
                # Shopify Payments only: the ARN comes later (assign_acquirer_reference); null for other gateways.
                "shopifyPaymentsSet": (
                    {"refundSet": {"acquirerReferenceNumber": None}} if parent["gateway"] == SHOPIFY_PAYMENTS else None
                ),
            }
            for parent, amount in parts
        ]
        refund: dict[str, Any] = {
            "__typename": "Refund",
            "id": f"gid://shopify/Refund/{number}",
            "note": note,
            "createdAt": self._stamp(),
            "order": {"id": order["id"]},
            "totalRefundedSet": _money_set(sum(amount for _, amount in parts), currency),
            "transactions": {"nodes": transactions},
        }
        self.refund_objects[refund["id"]] = refund
        order["refundIds"].append(refund["id"])
        return refund

    def _public_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        shown = copy.deepcopy(dict(order))
        shown["refunds"] = [copy.deepcopy(self.refund_objects[item]) for item in shown.pop("refundIds")]
        shown.pop("refundStatus", None)
        shown["returns"] = {
            "nodes": [
                {"id": found["id"], "createdAt": found["createdAt"]}
                for found in self.returns.values()
                if found["orderId"] == order["id"]
            ]
        }
        return shown

    def _public_return(self, found: Mapping[str, Any]) -> dict[str, Any]:
        shown = copy.deepcopy(dict(found))
        shown["order"] = self._public_order(self.orders[shown.pop("orderId")])
        return shown

    def _order_update(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or set(value) - {"id", "note", "tags", "email", "customAttributes"}:
            raise TopLevelError("Variable $input of type OrderInput! was provided invalid value")
        order = self.orders.get(str(value.get("id") or ""))
        if order is None:
            return {"order": None, "userErrors": [{"field": ["id"], "message": "Order does not exist"}]}
        if "note" in value:
            note = value["note"]
            if note is not None and len(str(note)) > 5000:
                return {"order": None, "userErrors": [{"field": ["note"], "message": "Note is too long"}]}
            order["note"] = note
        return {"order": {"id": order["id"]}, "userErrors": []}

    def _tags(self, field: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        order = self.orders.get(str(arguments.get("id") or ""))
        tags = arguments.get("tags")
        if order is None:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Order does not exist"}]}
        if not isinstance(tags, list) or not all(isinstance(tag, str) and 0 < len(tag) <= 255 for tag in tags):
            return {"node": None, "userErrors": [{"field": ["tags"], "message": "Tags are invalid"}]}
        if field == "tagsAdd":
            order["tags"] = [*order["tags"], *[tag for tag in tags if tag not in order["tags"]]]
        else:
            order["tags"] = [tag for tag in order["tags"] if tag not in tags]
        return {"node": {"id": order["id"]}, "userErrors": []}

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self._now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def _cost(requested: int) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": requested,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 999.0, "restoreRate": 50.0},
            }
        }

    @staticmethod
    def _user_errors(field: list[str], message: str) -> dict[str, Any]:
        return {"refund": None, "userErrors": [{"field": field, "message": message}], "order": None}

    def _errors(self, errors: list[TopLevelError]) -> Response:
        return json_response({"errors": [error.body() for error in errors], "extensions": self._cost(1)})

    # ---------------------------------------------------------------- webhooks

    def rest_refund(self, refund: Mapping[str, Any]) -> dict[str, Any]:
        """The refund as ``refunds/create`` carries it (the REST resource: numeric ids, lower-case kinds)."""

        def number(gid: str) -> int:
            return int(gid.rsplit("/", 1)[1])

        order_number = number(refund["order"]["id"])
        return {
            "id": number(refund["id"]),
            "order_id": order_number,
            "created_at": refund["createdAt"],
            "note": refund["note"],
            "restock": False,
            "admin_graphql_api_id": refund["id"],
            "refund_line_items": [],
            "transactions": [
                {
                    "id": number(item["id"]),
                    "order_id": order_number,
                    "kind": item["kind"].lower(),
                    "gateway": item["gateway"],
                    "status": item["status"].lower(),
                    "amount": item["amountSet"]["presentmentMoney"]["amount"],
                    "currency": item["amountSet"]["presentmentMoney"]["currencyCode"],
                    "parent_id": number(item["parentTransaction"]["id"]) if item["parentTransaction"] else None,
                    "error_code": item["errorCode"],
                    "admin_graphql_api_id": item["id"],
                }
                for item in refund["transactions"]["nodes"]
            ],
        }

    def send_topic(self, topic: str, payload: Mapping[str, Any], *, version: str = "2026-10") -> str:
        """Queue a delivery of ``topic`` signed like Shopify; returns its ``X-Shopify-Webhook-Id``."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        webhook_id = str(uuid.uuid4())
        headers = {
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-API-Version": version,
            "X-Shopify-Triggered-At": datetime.fromtimestamp(self._now(), UTC).isoformat(),
        }
        with self.lock:
            self.sent.append({"topic": topic, "webhook_id": webhook_id, "payload": dict(payload)})
        self.webhooks.send(webhook_id, topic, body, headers=headers)
        return webhook_id

    def _notify_refund(self, refund: Mapping[str, Any]) -> None:
        self.send_topic("refunds/create", self.rest_refund(refund))

    # ---------------------------------------------------------------- control routes

    def _control_seed(self, request: Request) -> Response:
        payload = request.get_json(force=True) or {}
        seeded = self.seed_payment(
            int(payload["amount_minor"]),
            str(payload["currency"]),
            settled=bool(payload.get("settled", True)),
            gateway=str(payload.get("gateway", SHOPIFY_PAYMENTS)),
            refund_status=str(payload.get("refund_status", "SUCCESS")),
        )
        return json_response(seeded, 201)

    def _control_settle(self, request: Request, number: str) -> Response:
        payload = request.get_json(force=True) or {}
        try:
            return json_response(
                self.settle_refund(f"gid://shopify/Refund/{number}", bool(payload.get("succeeded", True)))
            )
        except KeyError:
            return json_response({"error": f"no refund {number}"}, 404)

    def _control_acquirer_reference(self, request: Request, number: str) -> Response:
        try:
            return json_response(self.assign_acquirer_reference(f"gid://shopify/Refund/{number}"))
        except KeyError:
            return json_response({"error": f"no refund {number}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 409)

    def _control_admin_refund(self, request: Request, number: str) -> Response:
        payload = request.get_json(force=True) or {}
        try:
            return json_response(self.admin_refund(f"gid://shopify/Order/{number}", int(payload["amount_minor"])), 201)
        except (KeyError, StopIteration):
            return json_response({"error": f"no paid order {number}"}, 404)

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            orders = [self._public_order(order) for order in self.orders.values()]
        return json_response({"orders": orders, "sent": list(self.sent)})


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _demo_scenarios() -> list[Any]:
    """Full and partial refunds of a Shopify Payments order, a refund decided later (pending, then settled), an
    answer lost after Shopify made the refund, a processed return and a refund made in the Shopify admin (the
    help-desk scenarios on returns run in tests/e2e/test_help_desks.py)."""
    from local.scenarios import payment_scenarios, shopify_scenarios

    return [*payment_scenarios("shopify", async_seed={"refund_status": "PENDING"}), *shopify_scenarios()]
