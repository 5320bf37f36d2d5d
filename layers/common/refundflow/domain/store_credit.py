"""Store credit kept by refundflow: how a customer is keyed, and crediting a split refund's store-credit leg.

A split refund's leg of kind ``store_credit`` (an order paid partly with store credit, or the amount of a failed
leg moved to store credit) is not a provider refund: it is an entry in refundflow's own ledger
(``ports.StoreCreditLedger``), written exactly once per leg. Redeeming the balance at checkout is the shop's
business: refundflow keeps the balance and its entries and shows them (``refundflow store-credit show``).
"""

from __future__ import annotations

from refundflow.errors import InvalidRequest
from refundflow.models import CustomerContact, Refund, SplitLeg, TenderKind
from refundflow.ports import StoreCreditEntry, StoreCreditLedger


def customer_key(customer: CustomerContact) -> str:
    """Whose store credit it is: ``id:<customer_id>`` when the request named the customer, else
    ``email:<address, lowercased>``. The prefixes keep a customer id that looks like an address apart from one."""
    if customer.customer_id:
        return f"id:{customer.customer_id}"
    return f"email:{customer.email.strip().lower()}"


def lookup_key(customer: str) -> str:
    """The key of what a person types to look a customer up (``refundflow store-credit show``): a key as is,
    an address as ``email:``, anything else as a customer id."""
    if customer.startswith(("id:", "email:")):
        return customer if not customer.startswith("email:") else customer.lower()
    if "@" in customer:
        return f"email:{customer.strip().lower()}"
    return f"id:{customer}"


def leg_entry_id(refund_id: str, leg_index: int) -> str:
    """The ledger entry of a split refund's leg: one per leg, so a retried step never credits twice."""
    return f"{refund_id}#leg{leg_index}"


def credit_store_credit_leg(ledger: StoreCreditLedger, parent: Refund, leg: SplitLeg) -> StoreCreditEntry:
    """Credit ``leg`` (kind store_credit) of the split refund ``parent`` to its customer's store credit, once.

    Raises:
        InvalidRequest: the leg is not a store-credit leg, or its amount is not positive.
        IdempotencyConflict: the leg's entry exists with another amount or customer (the leg was changed).
        TransientError / GuardUnavailable: the ledger was busy or unreachable (safe to call again).
    """
    if leg.kind is not TenderKind.STORE_CREDIT:
        raise InvalidRequest(f"leg {leg.index} goes back to a {leg.kind} tender, not to store credit")
    return ledger.credit(
        customer_key(parent.customer),
        leg.amount,
        leg_entry_id(parent.refund_id, leg.index),
        parent.refund_id,
        f"Refund {parent.refund_id}, leg {leg.index}"
        + (f" (moved from leg {leg.replaces})" if leg.replaces is not None else ""),
    )
