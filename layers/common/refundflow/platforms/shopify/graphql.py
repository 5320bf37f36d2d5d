"""What the connector sends Shopify's GraphQL Admin API, and how it reads the answers (pure: no HTTP here).

Documented at shopify.dev/docs/api/admin-graphql (the version is pinned by ``SHOPIFY_API_VERSION``):
- ``refundCreate(input: RefundInput!)`` with ``@idempotent(key:)`` (mutations/refundCreate, usage/idempotent-requests);
  its ``transactions`` are ``OrderTransactionInput {amount, gateway, kind: REFUND, orderId, parentId}``, ``currency``
  is the order's presentment currency, ``allowOverRefunding`` stays false;
- ``order(id:)`` with its ``transactions`` (``OrderTransaction``: ``kind``, ``status``, ``gateway``, ``amountSet``)
  and its ``refunds``; ``node(id:)`` on a ``Refund``;
- ``OrderTransactionStatus`` (enums/OrderTransactionStatus): PENDING, SUCCESS, FAILURE, ERROR, AWAITING_RESPONSE,
  UNKNOWN;
- a Shopify Payments REFUND transaction's ``shopifyPaymentsSet.refundSet.acquirerReferenceNumber`` (objects/
  ShopifyPaymentsRefundSet, needs ``read_orders``): the card network's reference, once assigned; no webhook topic
  announces it, so the refund is read again (refundflow.domain.acquirer_references).

Ids are Shopify's GraphQL ids: a payment is the order (``gid://shopify/Order/<n>``), a refund
``gid://shopify/Refund/<n>``.
Our refund id is written into the refund's ``note`` (``refundflow rf_…``): how it is found again.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from refundflow.currencies import CurrencyProfile
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.ports import ProviderRefund, ProviderRefundStatus

PLATFORM = "shopify"
NOTE_PREFIX = "refundflow "
_OUR_ID = re.compile(r"\brefundflow (rf_[0-9a-f]{32})\b")
ORDER_GID = "gid://shopify/Order/"
REFUND_GID = "gid://shopify/Refund/"

_MONEY = "amountSet { presentmentMoney { amount currencyCode } }"
_REFUND_FIELDS = f"""
  id
  note
  createdAt
  order {{ id }}
  totalRefundedSet {{ presentmentMoney {{ amount currencyCode }} }}
  transactions(first: 20) {{
    nodes {{
      id kind status gateway errorCode {_MONEY}
      shopifyPaymentsSet {{ refundSet {{ acquirerReferenceNumber }} }}
    }}
  }}
"""

ORDER = f"""
query RefundflowOrder($id: ID!) {{
  order(id: $id) {{
    id
    name
    presentmentCurrencyCode
    transactions(first: 100) {{ id kind status gateway {_MONEY} parentTransaction {{ id }} }}
    refunds(first: 100) {{ {_REFUND_FIELDS} }}
  }}
}}
"""

REFUND = f"""
query RefundflowRefund($id: ID!) {{
  node(id: $id) {{
    __typename
    ... on Refund {{ {_REFUND_FIELDS} }}
  }}
}}
"""

REFUND_CREATE = f"""
mutation RefundflowRefundCreate($input: RefundInput!, $idempotencyKey: String!) {{
  refundCreate(input: $input) @idempotent(key: $idempotencyKey) {{
    refund {{ {_REFUND_FIELDS} }}
    userErrors {{ field message }}
  }}
}}
"""

DOCUMENTS = {"RefundflowOrder": ORDER, "RefundflowRefund": REFUND, "RefundflowRefundCreate": REFUND_CREATE}

CAPTURING_KINDS = frozenset({"SALE", "CAPTURE"})
LIVE_REFUND = frozenset({"SUCCESS", "PENDING", "AWAITING_RESPONSE", "UNKNOWN"})
_FAILED = frozenset({"FAILURE", "ERROR"})
_SUCCEEDED = frozenset({"SUCCESS"})


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class MoneyV2(_Payload):
    amount: str
    currency_code: str = Field(alias="currencyCode")


class MoneyBag(_Payload):
    presentment_money: MoneyV2 = Field(alias="presentmentMoney")


class _Id(_Payload):
    id: str


class PaymentsRefundSet(_Payload):
    """``ShopifyPaymentsRefundSet``: "The acquirer reference number (ARN) code generated for Visa/Mastercard
    transactions" (shopify.dev/docs/api/admin-graphql/latest/objects/ShopifyPaymentsRefundSet)."""

    acquirer_reference_number: str | None = Field(default=None, alias="acquirerReferenceNumber")


class PaymentsSet(_Payload):
    """``OrderTransaction.shopifyPaymentsSet`` (``ShopifyPaymentsTransactionSet``): Shopify Payments only, null for
    any other gateway."""

    refund_set: PaymentsRefundSet | None = Field(default=None, alias="refundSet")


class Transaction(_Payload):
    id: str
    kind: str
    status: str
    gateway: str | None = None
    error_code: str | None = Field(default=None, alias="errorCode")
    amount_set: MoneyBag = Field(alias="amountSet")
    parent_transaction: _Id | None = Field(default=None, alias="parentTransaction")
    shopify_payments_set: PaymentsSet | None = Field(default=None, alias="shopifyPaymentsSet")

    @property
    def acquirer_reference(self) -> str | None:
        """The REFUND transaction's ARN once Shopify Payments has it (None before, and for other gateways). A value
        our model cannot hold (not 6-40 letters and digits) is left out rather than refusing the refund."""
        found = self.shopify_payments_set.refund_set if self.shopify_payments_set else None
        value = found.acquirer_reference_number if found else None
        if value and 6 <= len(value) <= 40 and value.isascii() and value.isalnum():
            return value
        return None


class _Transactions(_Payload):
    nodes: list[Transaction] = Field(default_factory=list)


class Refund(_Payload):
    id: str
    note: str | None = None
    order: _Id
    total_refunded_set: MoneyBag = Field(alias="totalRefundedSet")
    transactions: _Transactions = Field(default_factory=_Transactions)

    @property
    def refund_id(self) -> str | None:
        """Our refund id, from the note we wrote (None: a refund made elsewhere, e.g. in the Shopify admin)."""
        found = _OUR_ID.search(self.note or "")
        return found.group(1) if found else None


class Order(_Payload):
    id: str
    name: str | None = None
    presentment_currency_code: str = Field(alias="presentmentCurrencyCode")
    transactions: list[Transaction] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)

    def capturing(self) -> list[Transaction]:
        """The transactions that took the customer's money (a sale, or a capture of an authorization)."""
        return [item for item in self.transactions if item.kind in CAPTURING_KINDS and item.status == "SUCCESS"]


def note_for(refund_id: str) -> str:
    return f"{NOTE_PREFIX}{refund_id}"


def order_gid(value: str) -> str:
    """An order's GraphQL id from either form (``gid://shopify/Order/5`` or the REST/webhook number ``5``)."""
    return value if value.startswith("gid://") else f"{ORDER_GID}{value}"


def refund_gid(value: str | int) -> str:
    text = str(value)
    return text if text.startswith("gid://") else f"{REFUND_GID}{text}"


def parse_order(value: Any) -> Order | None:
    """Raises: ValidationError."""
    return None if value is None else Order.model_validate(value)


def parse_refund(value: Any) -> Refund | None:
    """Raises: ValidationError."""
    if not isinstance(value, dict) or value.get("__typename", "Refund") != "Refund":
        return None
    return Refund.model_validate(value)


def money(profile: CurrencyProfile, value: MoneyV2) -> Money:
    """Shopify's Decimal amount as our Money, exactly. Raises: AmountNotRepresentable."""
    return profile.from_platform(value.amount, value.currency_code)


def refund_status(statuses: list[str]) -> ProviderRefundStatus:
    """A refund's outcome from its REFUND transactions: every one SUCCESS is done, any FAILURE/ERROR failed, the
    rest (PENDING, AWAITING_RESPONSE, UNKNOWN) still open."""
    if statuses and all(status in _SUCCEEDED for status in statuses):
        return ProviderRefundStatus.SUCCEEDED
    if any(status in _FAILED for status in statuses):
        return ProviderRefundStatus.FAILED
    return ProviderRefundStatus.PENDING


def provider_refund(refund: Refund, profile: CurrencyProfile) -> ProviderRefund:
    refunds = [item for item in refund.transactions.nodes if item.kind == "REFUND"]
    status = refund_status([item.status for item in refunds])
    failed = next((item for item in refunds if item.status in _FAILED), None)
    reason = (failed.error_code or failed.status.lower()) if failed is not None else None
    return ProviderRefund(
        provider=PaymentProvider.SHOPIFY,
        provider_refund_id=refund.id,
        payment_id=refund.order.id,
        amount=money(profile, refund.total_refunded_set.presentment_money),
        status=status,
        refund_id=refund.refund_id,
        failure_reason=reason,
        # One reference per REFUND transaction; a refund of ours has one transaction (one parent SALE/CAPTURE).
        acquirer_reference=next((item.acquirer_reference for item in refunds if item.acquirer_reference), None)
        if status is ProviderRefundStatus.SUCCEEDED
        else None,
    )
