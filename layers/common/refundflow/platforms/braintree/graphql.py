"""What the connector sends Braintree's GraphQL API, and how it reads the answers (pure: no HTTP here).

Every document below is validated against Braintree's published schema (``schema.graphql``) by the tests. Ids are
Braintree's: a payment is a transaction's GraphQL id (or its legacy id with the locator ``{"id_type": "legacy"}``);
a refund is known by its ``legacyId``, the id webhooks, the Control Panel and settlement reports show.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from refundflow.currencies import CurrencyProfile
from refundflow.ids import is_refund_id
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.ports import ProviderRefund, ProviderRefundStatus

PLATFORM = "braintree"
API_VERSION = "2018-09-10"
"""The ``Braintree-Version`` date header Braintree requires: the one the official server SDKs (braintree 4.45.0,
``Configuration.graphql_api_version``) send with their own GraphQL calls."""

_REFUND_FIELDS = """
  id
  legacyId
  orderId
  status
  amount { value currencyCode }
  paymentMethodSnapshot { __typename }
  statusHistory {
    __typename
    status
    ... on ProcessorDeclinedEvent { processorResponse { message } }
    ... on FailedEvent { processorResponse { message } }
  }
"""

TRANSACTION = f"""
query Transaction($id: ID!) {{
  node(id: $id) {{
    __typename
    ... on Transaction {{
      id
      legacyId
      status
      orderId
      amount {{ value currencyCode }}
      refunds {{ {_REFUND_FIELDS} }}
    }}
  }}
}}
"""

ID_FROM_LEGACY_ID = """
query IdFromLegacyId($legacyId: ID!) {
  idFromLegacyId(legacyId: $legacyId, type: TRANSACTION)
}
"""

REFUND_TRANSACTION = f"""
mutation RefundTransaction($input: RefundTransactionInput!) {{
  refundTransaction(input: $input) {{
    clientMutationId
    refund {{ {_REFUND_FIELDS} }}
  }}
}}
"""

REVERSE_TRANSACTION = f"""
mutation ReverseTransaction($input: ReverseTransactionInput!) {{
  reverseTransaction(input: $input) {{
    clientMutationId
    reversal {{
      __typename
      ... on Transaction {{ id legacyId status amount {{ value currencyCode }} }}
      ... on Refund {{ {_REFUND_FIELDS} }}
    }}
  }}
}}
"""

DOCUMENTS = {
    "Transaction": TRANSACTION,
    "IdFromLegacyId": ID_FROM_LEGACY_ID,
    "RefundTransaction": REFUND_TRANSACTION,
    "ReverseTransaction": REVERSE_TRANSACTION,
}

# PaymentStatus, for a refund (a credit): accepted and on its way, still undecided, or failed for good.
ACCEPTED = frozenset({"SUBMITTED_FOR_SETTLEMENT", "SETTLING", "SETTLED", "SETTLEMENT_CONFIRMED"})
UNDECIDED = frozenset({"AUTHORIZING", "AUTHORIZED", "SETTLEMENT_PENDING"})
FAILED = frozenset({"FAILED", "GATEWAY_REJECTED", "PROCESSOR_DECLINED", "SETTLEMENT_DECLINED", "AUTHORIZATION_EXPIRED"})
# For a payment: captured and settled (refund it), captured or held but not settled yet (void it).
SETTLED = frozenset({"SETTLING", "SETTLED", "SETTLEMENT_CONFIRMED"})
UNSETTLED = frozenset({"AUTHORIZED", "SUBMITTED_FOR_SETTLEMENT", "SETTLEMENT_PENDING"})
ASYNC_INSTRUMENTS = frozenset({"UsBankAccountDetails"})
"""Refunds to these are only decided at settlement (ACH can be declined days later): pending until then."""


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class MonetaryAmount(_Payload):
    value: str
    currency_code: str = Field(alias="currencyCode")


class _Typename(_Payload):
    typename: str = Field(alias="__typename")


class _ProcessorResponse(_Payload):
    message: str | None = None


class _StatusEvent(_Payload):
    status: str | None = None
    processor_response: _ProcessorResponse | None = Field(default=None, alias="processorResponse")


class Refund(_Payload):
    id: str
    legacy_id: str = Field(alias="legacyId", min_length=1)
    order_id: str | None = Field(default=None, alias="orderId")
    status: str
    amount: MonetaryAmount
    payment_method_snapshot: _Typename | None = Field(default=None, alias="paymentMethodSnapshot")
    status_history: list[_StatusEvent] = Field(default_factory=list, alias="statusHistory")

    @property
    def failure_message(self) -> str | None:
        for event in self.status_history:
            if event.status == self.status and event.processor_response is not None:
                return event.processor_response.message
        return None


class Transaction(_Payload):
    id: str
    legacy_id: str = Field(alias="legacyId", min_length=1)
    status: str
    order_id: str | None = Field(default=None, alias="orderId")
    amount: MonetaryAmount
    refunds: list[Refund] = Field(default_factory=list)


def parse_transaction(node: Any) -> Transaction | None:
    """The ``node`` answer as a Transaction (None when it is not one)."""
    if not isinstance(node, dict) or node.get("__typename") != "Transaction":
        return None
    return Transaction.model_validate(node)


def parse_refund(value: Any) -> Refund:
    """Raises: ValidationError."""
    return Refund.model_validate(value)


def refund_status(refund: Refund) -> ProviderRefundStatus:
    """A refund's PaymentStatus in our words. SUBMITTED_FOR_SETTLEMENT is success for a card refund (Braintree
    accepted it; a rare later failure comes as a ``refund_failed`` webhook) and pending for a refund to a bank
    account, which settlement may still decline."""
    if refund.status == "VOIDED":
        return ProviderRefundStatus.CANCELED
    if refund.status in FAILED:
        return ProviderRefundStatus.FAILED
    if refund.status in UNDECIDED:
        return ProviderRefundStatus.PENDING
    instrument = refund.payment_method_snapshot.typename if refund.payment_method_snapshot else None
    if refund.status in {"SUBMITTED_FOR_SETTLEMENT", "SETTLING"} and instrument in ASYNC_INSTRUMENTS:
        return ProviderRefundStatus.PENDING
    if refund.status in ACCEPTED:
        return ProviderRefundStatus.SUCCEEDED
    return ProviderRefundStatus.PENDING


def money(profile: CurrencyProfile, amount: MonetaryAmount) -> Money:
    """Braintree's decimal string as our Money, exactly.

    Raises:
        AmountNotRepresentable: more decimals than the currency has, or no amount at all.
    """
    return profile.from_platform(amount.value, amount.currency_code)


def provider_refund(
    refund: Refund, *, payment_id: str, profile: CurrencyProfile, ours: str | None = None
) -> ProviderRefund:
    status = refund_status(refund)
    reason = refund.failure_message or refund.status.lower() if status is ProviderRefundStatus.FAILED else None
    return ProviderRefund(
        provider=PaymentProvider.BRAINTREE,
        provider_refund_id=refund.legacy_id,
        payment_id=payment_id,
        amount=money(profile, refund.amount),
        status=status,
        refund_id=_ours(refund.order_id, ours),
        failure_reason=reason,
    )


def _ours(order_id: str | None, expected: str | None) -> str | None:
    """The order id as our refund id: only one of ours (a refund made elsewhere inherits the sale's order id)."""
    if order_id is None or not is_refund_id(order_id):
        return None
    return order_id if expected is None or order_id == expected else None


def void_of(transaction_id: str, legacy_id: str, status: str, amount: Money, refund_id: str | None) -> ProviderRefund:
    """The payment's own reversal (a void) as our refund: its provider id is the transaction's legacy id."""
    voided = status == "VOIDED"
    return ProviderRefund(
        provider=PaymentProvider.BRAINTREE,
        provider_refund_id=legacy_id,
        payment_id=transaction_id,
        amount=amount,
        status=ProviderRefundStatus.SUCCEEDED if voided else ProviderRefundStatus.FAILED,
        refund_id=refund_id,
        failure_reason=None if voided else f"transaction {status.lower()} after the void",
        method="void",
    )
