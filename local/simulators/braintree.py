"""A stateful Braintree sandbox: the GraphQL API's refund surface and its signed webhooks.

What it speaks (developer.paypal.com/braintree/graphql, and the official server SDKs for webhooks):
- ``POST /graphql`` with ``{query, variables}``, ``Authorization: Basic base64(public key:private key)`` (else 401,
  errorClass AUTHENTICATION) and a ``Braintree-Version`` date header (else a VALIDATION error);
- the root fields ``node(id:)``, ``idFromLegacyId(legacyId:, type:)``, ``refundTransaction(input:)`` and
  ``reverseTransaction(input:)``, arguments by variables; every answer is cut to the document's selection set
  (aliases, ``__typename`` and inline fragments on the object's type or its interfaces), as a GraphQL server does;
- Braintree's rules: a refund only of a SETTLED or SETTLING transaction (91506), at most what is left (91521), none
  once fully refunded (91512), the refund's orderId defaulting to the transaction's; a reversal voids an unsettled
  transaction (whole) and refunds a settled one in full; a void only of AUTHORIZED, SUBMITTED_FOR_SETTLEMENT or
  SETTLEMENT_PENDING (91504). Errors are ``{data, errors: [{message, path, extensions: {errorClass, legacyCode}}],
  extensions: {requestId}}`` with HTTP 200, like Braintree's;
- no idempotency key (Braintree has none): a resent mutation makes a second refund, which is why the connector finds
  before it resends;
- card refunds are SUBMITTED_FOR_SETTLEMENT at once (a payment seeded with ``decline_refunds`` gets
  PROCESSOR_DECLINED refunds); refunds to a US bank account (``instrument="us_bank_account"``) stay
  SUBMITTED_FOR_SETTLEMENT until ``settle_refund`` settles (``transaction_settled``) or declines
  (``transaction_settlement_declined``) them; a card refund declined later sends ``refund_failed``;
- webhooks form-encoded ``bt_signature=<public key>|<HMAC-SHA1>&bt_payload=<base64 XML>`` signed with
  SHA1(private key), as the SDKs' ``WebhookTesting`` builds them;
- the XML gateway's transaction read, as the server SDKs call it (braintree_python ``TransactionGateway.find``):
  ``GET /merchants/{merchant id}/transactions/{legacy id}`` with the same Basic credentials, ``Accept:
  application/xml`` and ``X-ApiVersion`` (the SDKs send 6); 401 (bad keys), 403 (another merchant id: this
  simulator's choice), 404 (no such transaction), 426 (no or an old ``X-ApiVersion``), all with an empty body as the
  SDK reads them; the answer ``<transaction>`` with ``<type>credit</type>`` for a refund and its
  ``<acquirer-reference-number>``, ``nil="true"`` until the network assigns it (``assign_acquirer_reference``,
  ``POST /_control/refunds/{legacy id}/acquirer-reference``): the only place Braintree gives a refund's own ARN
  (GraphQL has one only on the payment method snapshot, "equivalent to" the refunded sale's).

Ids: legacy ids are 8 lower-case characters; GraphQL ids are this simulator's own opaque strings.
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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlencode

from graphql import parse
from graphql.error import GraphQLSyntaxError
from graphql.language import (
    EnumValueNode,
    FieldNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, GraphQLSimulator, json_response
from refundflow.money import exponent

DEFAULT_PUBLIC_KEY = "refundflowsimpk01"
DEFAULT_PRIVATE_KEY = "refundflow0sim0private0key0000001"
DEFAULT_MERCHANT_ID = "refundflowsimmerchant"
# The XML gateway's API version the server SDKs send (braintree_python Configuration.api_version()).
XML_API_VERSION = 6
API_PATH = "/graphql"
UNSETTLED = ("AUTHORIZED", "SUBMITTED_FOR_SETTLEMENT", "SETTLEMENT_PENDING")
# A refund the processor took: the network assigns it an ARN as it settles.
_PROCESSED = frozenset({"SUBMITTED_FOR_SETTLEMENT", "SETTLING", "SETTLED"})
REFUNDABLE = ("SETTLED", "SETTLING")
CREDIT_CARD = "credit_card"
US_BANK_ACCOUNT = "us_bank_account"
INSTRUMENTS = {CREDIT_CARD: "CreditCardDetails", US_BANK_ACCOUNT: "UsBankAccountDetails"}
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTERFACES = {"Transaction": {"Node", "Payment"}, "Refund": {"Node", "Payment"}}
_STATUS_EVENTS = {
    "SUBMITTED_FOR_SETTLEMENT": "SubmittedForSettlementEvent",
    "SETTLING": "SettlingEvent",
    "SETTLED": "SettledEvent",
    "SETTLEMENT_DECLINED": "SettlementDeclinedEvent",
    "PROCESSOR_DECLINED": "ProcessorDeclinedEvent",
    "VOIDED": "VoidedEvent",
}
DECLINE_MESSAGE = "Processor Declined"
_REFUND_INPUT = frozenset({"clientMutationId", "transactionId", "refund"})
_REVERSE_INPUT = frozenset({"clientMutationId", "transactionId"})


class GraphQLError(Exception):
    def __init__(self, message: str, *, error_class: str = "VALIDATION", legacy_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class
        self.legacy_code = legacy_code

    def body(self, path: list[str]) -> dict[str, Any]:
        extensions: dict[str, Any] = {"errorClass": self.error_class}
        if self.legacy_code is not None:
            extensions["legacyCode"] = self.legacy_code
        return {"message": self.message, "path": path, "extensions": extensions}


def hmac_key(private_key: str) -> str:
    """Braintree's webhook HMAC key: SHA1 of the private key (hex)."""
    return hashlib.sha1(private_key.encode()).hexdigest()


def webhook_body(xml: str, public_key: str, hex_key: str) -> bytes:
    """A delivery as Braintree posts it: base64 payload (76-character lines), signed pair, form-encoded."""
    payload = base64.encodebytes(xml.encode())
    digest = hmac.new(bytes.fromhex(hex_key), payload, hashlib.sha1).hexdigest()
    return urlencode({"bt_signature": f"{public_key}|{digest}", "bt_payload": payload.decode()}).encode()


def _legacy_id() -> str:
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))


def _decimal(amount_minor: int, currency: str) -> str:
    digits = exponent(currency)
    return f"{Decimal(amount_minor).scaleb(-digits):.{digits}f}"


def _minor(value: str, currency: str) -> int:
    """A Braintree Amount in minor units. Raises: GraphQLError 81503 (format) for another shape."""
    digits = exponent(currency)
    pattern = rf"^\d{{1,12}}(\.\d{{1,{digits}}})?$" if digits else r"^\d{1,12}$"
    if not isinstance(value, str) or not re.match(pattern, value):
        raise GraphQLError("Amount is an invalid format.", legacy_code="81503")
    try:
        return int(Decimal(value).scaleb(digits))
    except InvalidOperation as error:  # pragma: no cover - the pattern admits decimals only
        raise GraphQLError("Amount is an invalid format.", legacy_code="81503") from error


def select(value: Any, selection: SelectionSetNode | None, variables: Mapping[str, Any]) -> Any:
    """``value`` cut to ``selection`` as a GraphQL server answers it (aliases, __typename, inline fragments)."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [select(item, selection, variables) for item in value]
    typename = value.get("__typename")
    answer: dict[str, Any] = {}
    for node in selection.selections:
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition.name.value if node.type_condition else None
            if condition is None or condition == typename or condition in _INTERFACES.get(str(typename), set()):
                answer.update(select(value, node.selection_set, variables))
        elif isinstance(node, FieldNode):
            key = node.alias.value if node.alias else node.name.value
            answer[key] = select(value.get(node.name.value), node.selection_set, variables)
    return answer


class BraintreeSimulator(GraphQLSimulator):
    """Transactions, their refunds and voids, and the webhooks Braintree sends about refunds."""

    name = "braintree"
    # One endpoint for everything: a fault names the GraphQL root field (``/graphql#<field>``).
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"^/graphql#(refundTransaction|reverseTransaction)$"),
        "get_refund": ("POST", r"^/graphql#node$"),
        "get_payment": ("POST", r"^/graphql#node$"),
        "find_refund": ("POST", r"^/graphql#node$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 429

    def __init__(
        self,
        *,
        public_key: str = DEFAULT_PUBLIC_KEY,
        private_key: str = DEFAULT_PRIVATE_KEY,
        merchant_id: str = DEFAULT_MERCHANT_ID,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.public_key = public_key
        self.private_key = private_key
        self.merchant_id = merchant_id
        self._now = now
        self.transactions: dict[str, dict[str, Any]] = {}
        self.refund_objects: dict[str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        super().__init__()
        self.webhooks.configure(None, hmac_key(private_key))
        self.route(API_PATH, self._graphql, methods=["POST"])
        self.route("/_control/transactions", self._control_seed, methods=["POST"])
        self.route("/_control/refunds/<legacy_id>/settle", self._control_settle, methods=["POST"])
        self.route(
            "/_control/refunds/<legacy_id>/acquirer-reference", self._control_acquirer_reference, methods=["POST"]
        )
        self.route("/merchants/<merchant_id>/transactions/<transaction_id>", self._xml_transaction, methods=["GET"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.transactions.clear()
            self.refund_objects.clear()
            self.notifications.clear()

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """The signature is in the form body itself (``webhook_body``); the header only names the form."""
        return {"Content-Type": "application/x-www-form-urlencoded"}

    def is_graphql(self, request: Request) -> bool:
        return request.path == API_PATH

    def fault_response(self, fault: FaultRule) -> Response:
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        error_class = "RESOURCE_LIMIT" if status == 429 else "INTERNAL" if status >= 500 else "VALIDATION"
        return json_response(self._errors([GraphQLError("Simulated fault", error_class=error_class)], []), status)

    def not_found(self, request: Request) -> Response:
        return json_response({"error": "Not Found"}, 404)

    # ---------------------------------------------------------------- PaymentSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        return {
            "api": {"public_key": self.public_key, "private_key": self.private_key, "merchant_id": self.merchant_id},
            "verification": {"signing_keys": [f"{self.public_key}|{hmac_key(self.private_key)}"]},
        }

    def send_webhooks_to(self, url: str) -> None:
        self.webhooks.configure(url, hmac_key(self.private_key))

    def seed_payment(
        self,
        amount_minor: int,
        currency: str,
        *,
        settled: bool = True,
        instrument: str = CREDIT_CARD,
        decline_refunds: bool = False,
        order_id: str | None = None,
    ) -> dict[str, Any]:
        """A sale of ``amount_minor`` ISO minor units, SETTLED (or SUBMITTED_FOR_SETTLEMENT when not ``settled``).

        Returns ``{"provider": "braintree", "payment_id": <GraphQL id>, "locator": {}}``; the legacy id is
        ``transaction(...)["legacyId"]``.
        """
        if instrument not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {instrument!r}")
        legacy_id = _legacy_id()
        status = "SETTLED" if settled else "SUBMITTED_FOR_SETTLEMENT"
        transaction: dict[str, Any] = {
            "__typename": "Transaction",
            "id": f"dHJhbnNhY3Rpb25f{legacy_id}",
            "legacyId": legacy_id,
            "status": status,
            "orderId": order_id,
            "amount": {"value": _decimal(amount_minor, currency), "currencyCode": currency},
            "paymentMethodSnapshot": {"__typename": INSTRUMENTS[instrument]},
            "refundIds": [],
            "declineRefunds": decline_refunds,
            "createdAt": self._stamp(),
        }
        with self.lock:
            self.transactions[transaction["id"]] = transaction
        return {"provider": "braintree", "payment_id": transaction["id"], "locator": {}}

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: a refund made in the Braintree Control Panel (its order id is the sale's, as Braintree
        copies it; nothing of ours), settled at once with its ``transaction_settled`` webhook; returns the
        refund's legacy id (what webhooks and the connector name it by)."""
        with self.lock:
            transaction = self.transactions[payment_id]
            refund = self._new_refund(transaction, amount_minor, transaction["orderId"])
        self.settle_refund(str(refund["legacyId"]), True)
        return str(refund["legacyId"])

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Settle (``transaction_settled``) or decline a refund: a bank-account refund's settlement is declined
        (``transaction_settlement_declined``), a card refund fails (``refund_failed``)."""
        with self.lock:
            refund = self._refund_by_legacy(provider_refund_id)
            if refund is None:
                raise KeyError(provider_refund_id)
            bank = refund["paymentMethodSnapshot"]["__typename"] == INSTRUMENTS[US_BANK_ACCOUNT]
            if succeeded:
                status, kind = "SETTLED", "transaction_settled"
            elif bank:
                status, kind = "SETTLEMENT_DECLINED", "transaction_settlement_declined"
            else:
                status, kind = "PROCESSOR_DECLINED", "refund_failed"
            self._move(refund, status)
            snapshot = copy.deepcopy(refund)
        self._notify(kind, snapshot)
        return snapshot

    def assign_acquirer_reference(self, provider_refund_id: str) -> str:
        """The card network assigns the processed card refund its ARN (the XML gateway's
        ``acquirer-reference-number`` from now on; no webhook says so). Returns it.

        Raises:
            KeyError: no such refund.
            ValueError: not a card refund that went through, or it has its reference already.
        """
        with self.lock:
            refund = self.refund_objects[provider_refund_id]
            card = refund["paymentMethodSnapshot"]["__typename"] != INSTRUMENTS[US_BANK_ACCOUNT]
            if not card or refund["status"] not in _PROCESSED or refund.get("acquirerReferenceNumber"):
                raise ValueError(f"refund {provider_refund_id} is {refund['status']}: no reference to assign")
            refund["acquirerReferenceNumber"] = "74" + "".join(str(secrets.randbelow(10)) for _ in range(21))
            return str(refund["acquirerReferenceNumber"])

    def refunds(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public(refund) for refund in self.refund_objects.values()]

    def transaction(self, payment_id: str) -> dict[str, Any]:
        with self.lock:
            return self._public(self.transactions[payment_id])

    # ---------------------------------------------------------------- the API

    def _graphql(self, request: Request) -> Response:
        if not self._authenticated(request):
            error = GraphQLError("Authentication credentials are invalid", error_class="AUTHENTICATION")
            return json_response(self._errors([error], []), 401)
        if not _VERSION.match(request.headers.get("Braintree-Version", "")):
            error = GraphQLError("Braintree-Version header is required (YYYY-MM-DD)")
            return json_response(self._errors([error], []), 400)
        try:
            body = json.loads(request.get_data())
            document = parse(body["query"])
            variables = body.get("variables") or {}
            if not isinstance(variables, dict):
                raise TypeError("variables")
        except (ValueError, KeyError, TypeError, GraphQLSyntaxError) as failure:
            error = GraphQLError(f"Invalid request: {failure}", error_class="VALIDATION")
            return json_response(self._errors([error], []), 400)
        operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
        if len(operations) != 1:
            return json_response(self._errors([GraphQLError("one operation per request")], []), 400)
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for node in operations[0].selection_set.selections:
            if not isinstance(node, FieldNode):
                continue
            key = node.alias.value if node.alias else node.name.value
            try:
                arguments = {
                    argument.name.value: self._argument(argument.value, variables) for argument in node.arguments or ()
                }
                value = self._resolve(node.name.value, arguments)
                data[key] = select(value, node.selection_set, variables)
            except GraphQLError as error:
                data[key] = None
                errors.append(error.body([key]))
        answer: dict[str, Any] = {"data": data, "extensions": {"requestId": secrets.token_hex(8)}}
        if errors:
            answer["errors"] = errors
        return json_response(answer)

    @staticmethod
    def _argument(value: Any, variables: Mapping[str, Any]) -> Any:
        if isinstance(value, VariableNode) and value.name.value in variables:
            return variables[value.name.value]
        if isinstance(value, EnumValueNode):
            return value.value
        raise GraphQLError("this sandbox takes arguments as variables")

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.public_key) and hmac.compare_digest(password, self.private_key)

    def _resolve(self, field: str, arguments: Mapping[str, Any]) -> Any:
        with self.lock:
            if field == "ping":
                return "pong"
            if field == "node":
                return self._node(str(arguments.get("id") or ""))
            if field == "idFromLegacyId":
                if arguments.get("type") != "TRANSACTION":
                    raise GraphQLError("this sandbox translates transaction ids only")
                return f"dHJhbnNhY3Rpb25f{arguments.get('legacyId')}"
            if field == "refundTransaction":
                return self._refund_transaction(arguments.get("input"))
            if field == "reverseTransaction":
                return self._reverse_transaction(arguments.get("input"))
        raise GraphQLError(f"Field '{field}' is not offered by this sandbox")

    def _node(self, node_id: str) -> dict[str, Any]:
        if node_id in self.transactions:
            return self._public(self.transactions[node_id])
        refund = next((refund for refund in self.refund_objects.values() if refund["id"] == node_id), None)
        if refund is None:
            raise GraphQLError("An object with this ID was not found.", error_class="NOT_FOUND")
        return self._public(refund)

    def _transaction_of(self, value: Any, fields: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, dict) or not isinstance(value.get("transactionId"), str):
            raise GraphQLError("Variable 'input' has an invalid value: transactionId is required")
        unknown = set(value) - fields
        if unknown:
            raise GraphQLError(f"Variable 'input' has an invalid value: unknown fields {sorted(unknown)}")
        transaction = self.transactions.get(value["transactionId"])
        if transaction is None:
            raise GraphQLError("An object with this ID was not found.", error_class="NOT_FOUND")
        return transaction

    def _refund_transaction(self, value: Any) -> dict[str, Any]:
        transaction = self._transaction_of(value, _REFUND_INPUT)
        details = value.get("refund") or {}
        unknown = set(details) - {"amount", "orderId", "merchantAccountId", "description", "reason", "lineItems"}
        if not isinstance(details, dict) or unknown:
            raise GraphQLError(f"Variable 'input' has an invalid value: refund.{sorted(unknown)}")
        currency = transaction["amount"]["currencyCode"]
        left = self._left(transaction)
        if transaction["status"] not in REFUNDABLE:
            raise GraphQLError("Cannot refund a transaction unless it is settled.", legacy_code="91506")
        if left <= 0:
            raise GraphQLError("Transaction has already been completely refunded.", legacy_code="91512")
        amount = _minor(details["amount"], currency) if details.get("amount") is not None else left
        if amount <= 0:
            raise GraphQLError("Amount must be greater than zero.", legacy_code="81531")
        if amount > left:
            raise GraphQLError("Refund amount is too large.", legacy_code="91521")
        order_id = details.get("orderId", transaction["orderId"])
        if order_id is not None and (not isinstance(order_id, str) or len(order_id) > 255):
            raise GraphQLError("Order ID is too long.", legacy_code="91501")
        refund = self._new_refund(transaction, amount, order_id)
        return {"clientMutationId": value.get("clientMutationId"), "refund": self._public(refund)}

    def _reverse_transaction(self, value: Any) -> dict[str, Any]:
        transaction = self._transaction_of(value, _REVERSE_INPUT)
        if transaction["status"] in UNSETTLED:
            self._move(transaction, "VOIDED")
            return {"clientMutationId": value.get("clientMutationId"), "reversal": self._public(transaction)}
        if transaction["status"] in REFUNDABLE and not transaction["refundIds"]:
            refund = self._new_refund(transaction, self._left(transaction), transaction["orderId"])
            return {"clientMutationId": value.get("clientMutationId"), "reversal": self._public(refund)}
        raise GraphQLError(
            "Transaction can only be voided if status is authorized, submitted_for_settlement, or - for PayPal - "
            "settlement_pending.",
            legacy_code="91504",
        )

    # ---------------------------------------------------------------- state

    def _left(self, transaction: dict[str, Any]) -> int:
        currency = transaction["amount"]["currencyCode"]
        taken = sum(
            _minor(self.refund_objects[legacy]["amount"]["value"], currency)
            for legacy in transaction["refundIds"]
            if self.refund_objects[legacy]["status"] not in ("PROCESSOR_DECLINED", "SETTLEMENT_DECLINED", "VOIDED")
        )
        return _minor(transaction["amount"]["value"], currency) - taken

    def _new_refund(self, transaction: dict[str, Any], amount: int, order_id: str | None) -> dict[str, Any]:
        legacy_id = _legacy_id()
        currency = transaction["amount"]["currencyCode"]
        refund: dict[str, Any] = {
            "__typename": "Refund",
            "id": f"cmVmdW5kXw{legacy_id}",
            "legacyId": legacy_id,
            "orderId": order_id,
            "status": "SUBMITTED_FOR_SETTLEMENT",
            "amount": {"value": _decimal(amount, currency), "currencyCode": currency},
            "paymentMethodSnapshot": dict(transaction["paymentMethodSnapshot"]),
            "refundedTransactionId": transaction["legacyId"],
            "statusHistory": [],
            "createdAt": self._stamp(),
        }
        self._move(refund, "PROCESSOR_DECLINED" if transaction["declineRefunds"] else "SUBMITTED_FOR_SETTLEMENT")
        self.refund_objects[legacy_id] = refund
        transaction["refundIds"].append(legacy_id)
        return refund

    def _move(self, payment: dict[str, Any], status: str) -> None:
        payment["status"] = status
        event: dict[str, Any] = {
            "__typename": _STATUS_EVENTS[status],
            "status": status,
            "timestamp": self._stamp(),
            "amount": dict(payment["amount"]),
        }
        if status == "PROCESSOR_DECLINED":
            event["processorResponse"] = {"message": DECLINE_MESSAGE, "legacyCode": "2005"}
        payment.setdefault("statusHistory", []).insert(0, event)

    def _public(self, payment: dict[str, Any]) -> dict[str, Any]:
        """What the API shows of a transaction or refund (refunds listed on their transaction)."""
        shown = copy.deepcopy(payment)
        if shown["__typename"] == "Transaction":
            shown["refunds"] = [self._public(self.refund_objects[legacy]) for legacy in shown.pop("refundIds")]
            shown.pop("declineRefunds", None)
        return shown

    def _refund_by_legacy(self, legacy_id: str) -> dict[str, Any] | None:
        return self.refund_objects.get(legacy_id)

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self._now(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @staticmethod
    def _errors(errors: list[GraphQLError], path: list[str]) -> dict[str, Any]:
        return {
            "data": None,
            "errors": [error.body(path) for error in errors],
            "extensions": {"requestId": secrets.token_hex(8)},
        }

    # ---------------------------------------------------------------- webhooks

    def notification_xml(self, kind: str, refund: Mapping[str, Any]) -> str:
        """Braintree's ``<notification>`` for a refund transaction (legacy ids, lower-case statuses)."""
        stamp = datetime.fromtimestamp(self._now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        order = f"<order-id>{refund['orderId']}</order-id>" if refund.get("orderId") else '<order-id nil="true"/>'
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<notification>'
            f'<timestamp type="datetime">{stamp}</timestamp><kind>{kind}</kind><subject><transaction>'
            f"<id>{refund['legacyId']}</id><type>credit</type><status>{refund['status'].lower()}</status>"
            f"<amount>{refund['amount']['value']}</amount>"
            f"<currency-iso-code>{refund['amount']['currencyCode']}</currency-iso-code>{order}"
            f"<refunded-transaction-id>{refund['refundedTransactionId']}</refunded-transaction-id>"
            "</transaction></subject></notification>\n"
        )

    def _notify(self, kind: str, refund: Mapping[str, Any]) -> None:
        xml = self.notification_xml(kind, refund)
        with self.lock:
            self.notifications.append({"kind": kind, "xml": xml})
        secret = self.webhooks.secret or hmac_key(self.private_key)
        body = webhook_body(xml, self.public_key, secret)
        self.webhooks.send(f"{kind}:{refund['legacyId']}", kind, body)

    # ---------------------------------------------------------------- control routes

    def _control_seed(self, request: Request) -> Response:
        payload = request.get_json(force=True) or {}
        seeded = self.seed_payment(
            int(payload["amount_minor"]),
            str(payload["currency"]),
            settled=bool(payload.get("settled", True)),
            instrument=str(payload.get("instrument", CREDIT_CARD)),
            decline_refunds=bool(payload.get("decline_refunds", False)),
        )
        return json_response(seeded, 201)

    def _control_settle(self, request: Request, legacy_id: str) -> Response:
        payload = request.get_json(force=True) or {}
        try:
            return json_response(self.settle_refund(legacy_id, bool(payload.get("succeeded", True))))
        except KeyError:
            return json_response({"error": f"no refund {legacy_id}"}, 404)

    def _control_acquirer_reference(self, request: Request, legacy_id: str) -> Response:
        try:
            return json_response({"acquirer_reference_number": self.assign_acquirer_reference(legacy_id)})
        except KeyError:
            return json_response({"error": f"no refund {legacy_id}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 409)

    # ---------------------------------------------------------------- the XML gateway

    def _xml_transaction(self, request: Request, merchant_id: str, transaction_id: str) -> Response:
        """``Transaction.find``: a refund (type credit) or a sale, with what the XML gateway says of it."""
        if not self._authenticated(request):
            return Response(b"", status=401)
        version = request.headers.get("X-ApiVersion", "")
        if not version.isdigit() or int(version) < 4:
            return Response(b"", status=426)
        if not hmac.compare_digest(merchant_id, self.merchant_id):
            return Response(b"", status=403)
        with self.lock:
            refund = self.refund_objects.get(transaction_id)
            sale = next((item for item in self.transactions.values() if item["legacyId"] == transaction_id), None)
            found = refund or sale
            if found is None:
                return Response(b"", status=404)
            kind = "credit" if refund is not None else "sale"
            reference = found.get("acquirerReferenceNumber")
            order = found.get("orderId")
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<transaction>'
                f"<id>{found['legacyId']}</id><type>{kind}</type><status>{found['status'].lower()}</status>"
                f"<amount>{found['amount']['value']}</amount>"
                f"<currency-iso-code>{found['amount']['currencyCode']}</currency-iso-code>"
                + (f"<order-id>{order}</order-id>" if order else '<order-id nil="true"/>')
                + (
                    f"<acquirer-reference-number>{reference}</acquirer-reference-number>"
                    if reference
                    else '<acquirer-reference-number nil="true"/>'
                )
                + "</transaction>\n"
            )
        return Response(body.encode(), status=200, content_type="application/xml; charset=utf-8")

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            transactions = [self._public(transaction) for transaction in self.transactions.values()]
        return json_response({"transactions": transactions, "notifications": list(self.notifications)})


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _demo_scenarios() -> list[Any]:
    """Full and partial card refunds, and a bank-account refund settled later (success) and declined at
    settlement (late failure). Voids, lost answers and declines are covered in-process (tests/platforms/braintree)."""
    from local.scenarios import payment_scenarios

    return payment_scenarios("braintree", async_seed={"instrument": US_BANK_ACCOUNT}, unknown_outcome=None)
