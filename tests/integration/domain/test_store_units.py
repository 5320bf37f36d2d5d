"""What the store spends per straight-through refund (README "Cost per refund"): the refund's STATE item keeps only
what differs from the model's defaults (every transactional write of it is billed per started KB), so a
straight-through refund's stays under 1 KB up to REFUNDED, and items stored before, with their zero counters, nulls
and empty lists, read the same; a new payment's balance is answered as put, not read back."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeSerializer

from benchmarks.meters import Meter, item_size
from refundflow.adapters.dynamodb import RefundRepository
from refundflow.models import PaymentProvider, Refund
from refundflow.money import Money
from refundflow.ports import ProviderPayment
from refundflow.status import RefundStatus
from tests.support.fakes import World, a_refund

S = RefundStatus
KB = 1024
CREDIT_NOTE = {
    "system": "xero",
    "document_id": "3888bd14-cd29-44ff-a4e3-ac32db6e8d5b",
    "number": "CN-0002",
    "total": {"minor_units": 2500, "currency": "EUR"},
    "allocated_to_invoice": {"minor_units": 0, "currency": "EUR"},
    "cash_refunded": {"minor_units": 2500, "currency": "EUR"},
    "payment_id": "0b780855-2861-457e-aac9-3535eb8f78dd",
    "external_reference": "rf_4307737556037cf46035ccc74a426843 refund of INV-0002",
}


def state_item(env: World, refund_id: str) -> dict[str, Any]:
    item: dict[str, Any] = env.tables.client.get_item(
        TableName=env.tables.refunds_table, Key={"pk": {"S": f"REFUND#{refund_id}"}, "sk": {"S": "STATE"}}
    )["Item"]
    return item


def straight_through(env: World) -> list[tuple[Refund, dict[str, Any], Refund]]:
    """A refund taken along the straight path by the repository, with what each step records (policy, reservation,
    provider refund, credit note): each version written, its STATE item, and the refund read back then."""
    repository = env.repository
    refund = repository.create(
        a_refund("RMA-size", payment_id="pi_JLjC2kQOk73SKRXKZd4oEYf6"), actor="shop", delivery=None
    ).refund
    written = [(refund, state_item(env, refund.refund_id), repository.get(refund.refund_id))]
    amount = {"minor_units": 2500, "currency": "EUR"}
    steps: list[tuple[RefundStatus, dict[str, Any]]] = [
        (S.VALIDATED, {"amount": amount}),
        (
            S.APPROVED,
            {
                "policy": {"outcome": "approve", "policy_version": "2026.12.1", "rule_id": "auto_approve"},
                "reservation": {"amount": amount, "state": "HELD", "day": "2026-12-07"},
            },
        ),
        (S.REFUND_SUBMITTED, {}),
        (
            S.REFUNDED,
            {
                "provider_refund_id": "re_8ZIJe5cczTHskt8Px9yPIJ53",
                "provider_status": "succeeded",
                "reservation": {"amount": amount, "state": "CONSUMED", "day": "2026-12-07"},
            },
        ),
        (S.INVOICE_UPDATED, {"credit_document": CREDIT_NOTE}),
        (S.COMPLETED, {}),
    ]
    for status, changes in steps:
        refund = repository.transition(refund, status, actor="tests", changes=changes).refund
        written.append((refund, state_item(env, refund.refund_id), repository.get(refund.refund_id)))
    return written


def test_the_state_item_stores_no_default_and_reads_back_the_same_refund(env: World) -> None:
    # GIVEN a refund taken along the straight path (its counters zero, its policy without a reason or adjustments,
    # its payment without a locator, its credit note of the default kind and state, no allocation id)
    for refund, item, read in straight_through(env):
        # THEN no STATE item holds a zero counter, a null, an empty list or map, or a credit note's defaults
        stored = str(item)
        for absent in ("books_attempts", "lookup_attempts", "return_seq", "return_seen_seq", "'locator'"):
            assert absent not in stored, (refund.status, absent)
        for empty in ("NULL", "'L': []", "'M': {}", "'kind'", "'allocation_id'"):
            assert empty not in stored, (refund.status, empty)
        # AND what is read back is the refund written, defaults restored
        assert read == refund
        assert (read.books_attempts, read.lookup_attempts, read.return_seq, read.return_seen_seq) == (0, 0, 0, 0)
        assert read.payment.locator == {}
        if read.policy is not None:
            assert (read.policy.adjustments, read.policy.reason_code) == ([], None)


def test_a_straight_through_refund_stays_under_1_kb_up_to_refunded(env: World) -> None:
    # WHEN a refund goes along the straight path with an invoice's credit note
    sizes = {refund.status: item_size(item) for refund, item, _ in straight_through(env)}
    # THEN every STATE write up to REFUNDED is billed for one KB (COMPLETED, with its credit note and the
    # by-status keys, is not: measured and reported in README "Cost per refund")
    assert max(size for status, size in sizes.items() if status not in {S.INVOICE_UPDATED, S.COMPLETED}) < KB
    assert sizes[S.REFUNDED] < KB


def test_a_state_item_stored_with_its_defaults_reads_the_same(env: World) -> None:
    # GIVEN a completed refund, and its STATE item as the code before stored it: every default written out
    # (zero counters, nulls inside maps, empty lists and maps)
    refund, _, _ = straight_through(env)[-1]
    document = refund.model_dump(mode="json", include=set(Refund.model_fields) - {"status_since"})
    full = RefundRepository._state_item(refund)
    legacy = {
        **full,
        **{
            name: TypeSerializer().serialize(document[name])
            for name in ("books_attempts", "lookup_attempts", "return_seq", "return_seen_seq", "payment", "policy")
        },
        "credit_document": TypeSerializer().serialize({**document["credit_document"], "allocation_id": None}),
    }
    assert item_size(legacy) > item_size(full) + 150
    env.tables.client.put_item(TableName=env.tables.refunds_table, Item=legacy)
    # WHEN read
    # THEN it is the same refund
    assert env.repository.get(refund.refund_id) == refund


# ---------------------------------------------------------------- the payment's balance, opened without a read back


def test_a_new_payments_balance_is_answered_as_put_without_reading_it_back(env: World) -> None:
    def payment(captured: int, refunded: int) -> ProviderPayment:
        return ProviderPayment(
            provider=PaymentProvider.STRIPE,
            payment_id="pi_new",
            captured=Money.of(captured, "EUR"),
            refunded=Money.of(refunded, "EUR"),
            status="succeeded",
        )

    meter = Meter().start()
    try:
        # WHEN a payment refundflow has not seen is opened
        opened = env.repository.open_balance(payment(10_000, 2_500))
        first = meter.snapshot()
        # AND opened again with other figures (another look-up, racing or later)
        again = env.repository.open_balance(payment(99_999, 0))
    finally:
        meter.stop()
    # THEN the answer is what is stored, read once (the look for it) and written once
    assert opened == env.repository.get_balance(PaymentProvider.STRIPE, "pi_new")
    assert (opened.remaining.minor_units, opened.reserved.minor_units) == (7_500, 0)
    assert first["calls"] == {"dynamodb:GetItem": 1, "dynamodb:PutItem": 1}
    # AND the second opening answers the first figures
    assert again == opened
