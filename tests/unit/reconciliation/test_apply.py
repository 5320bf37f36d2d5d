"""Findings applied to refunds on the store: SETTLED, mismatches on the timeline and the bus, re-runs idle."""

from __future__ import annotations

from datetime import date

import pytest

from refundflow.domain.books import update_invoice
from refundflow.domain.external import book_external_refund, external_refund_id
from refundflow.domain.payments import issue_refund
from refundflow.events import RECONCILIATION_MISMATCH, ReconciliationEvent
from refundflow.models import Refund
from refundflow.money import Money
from refundflow.reconciliation.apply import Outcome, Run
from refundflow.reconciliation.engine import MatchClass
from refundflow.reconciliation.records import LineKind, SettlementLine
from refundflow.reconciliation.run import reconcile
from refundflow.status import RefundStatus
from tests.support.fakes import World, provider_event, refund_request_body

PAYMENT = "pi_3Pabc"


def completed_refund(env: World, reference: str, amount: int = 2_500) -> Refund:
    """A refund paid by the (fake) provider and booked: COMPLETED, with its provider refund id."""
    refund_id = env.reserved(refund_request_body(reference=reference, amount=amount), delivery_id=f"dlv-{reference}")
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    refund = env.repository.get(refund_id)
    assert refund.status is RefundStatus.COMPLETED
    assert refund.provider_refund_id
    return refund


def refund_line(line_id: str, reference: str, amount: int, currency: str = "EUR", kind=LineKind.REFUND):
    sign = 1 if kind is LineKind.REFUND_FAILURE else -1
    return SettlementLine(
        source="stripe",
        line_no=int(line_id.rsplit("_", 1)[-1]),
        line_id=line_id,
        kind=kind,
        reference=reference,
        amount=amount,
        currency=currency,
        fee=0,
        net=sign * amount,
        booked_on=date(2026, 11, 30),
        payout_id="po_1",
    )


@pytest.fixture
def paid(env: World) -> World:
    env.provider.add_payment(PAYMENT, Money.of(100_000, "EUR"))
    return env


def run_file(env: World, lines, file="settlement/stripe/2026-11-30.csv"):
    return reconcile(
        lines,
        Run(file=file, correlation_id="recon-1", source="stripe"),
        repository=env.repository,
        recorder=env.recorder,
        publisher=env.publisher,
        expected=[],
    )


def test_matched_refund_settles_once_and_a_rerun_changes_nothing(paid: World) -> None:
    # GIVEN a completed refund and a settlement line for it
    refund = completed_refund(paid, "RMA-1")
    lines = [refund_line("txn_1", refund.provider_refund_id, 2_500)]
    # WHEN the file is reconciled
    first = run_file(paid, lines)
    # THEN the refund is SETTLED, with its audit entry and RefundSettled
    settled = paid.repository.get(refund.refund_id)
    assert settled.status is RefundStatus.SETTLED
    assert paid.publisher.for_refund(refund.refund_id)[-1] == "RefundSettled"
    assert paid.repository.timeline(refund.refund_id)[-1].details["line"] == "stripe#txn_1"
    assert first.summary.counts == {"matched": 1}
    # WHEN the same file runs again
    events_before = len(paid.publisher.events)
    again = run_file(paid, lines)
    # THEN nothing changes
    assert paid.repository.get(refund.refund_id).version == settled.version
    assert len(paid.publisher.events) == events_before
    assert again.summary.outcomes == {"already_done": 1}


def test_another_line_for_a_settled_refund_is_a_duplicate_on_its_timeline(paid: World) -> None:
    refund = completed_refund(paid, "RMA-2")
    run_file(paid, [refund_line("txn_1", refund.provider_refund_id, 2_500)])
    # WHEN a later file settles the same refund again under another line id
    later = run_file(paid, [refund_line("txn_9", refund.provider_refund_id, 2_500)], file="settlement/stripe/b.csv")
    assert later.summary.counts == {"duplicate_line": 1}
    entry = paid.repository.timeline(refund.refund_id)[-1]
    assert entry.type == RECONCILIATION_MISMATCH
    assert entry.details["match_class"] == "duplicate_line"
    assert paid.publisher.for_refund(refund.refund_id)[-1] == RECONCILIATION_MISMATCH


def test_amount_difference_reaches_the_timeline_and_the_bus_once(paid: World) -> None:
    refund = completed_refund(paid, "RMA-3")
    lines = [refund_line("txn_1", refund.provider_refund_id, 2_499)]
    run_file(paid, lines)
    run_file(paid, lines)
    stored = paid.repository.get(refund.refund_id)
    assert stored.status is RefundStatus.COMPLETED
    mismatches = [e for e in paid.repository.timeline(refund.refund_id) if e.type == RECONCILIATION_MISMATCH]
    assert len(mismatches) == 1
    assert (mismatches[0].details["match_class"], mismatches[0].details["difference_minor_units"]) == (
        "amount_differs",
        -1,
    )
    assert paid.publisher.for_refund(refund.refund_id).count(RECONCILIATION_MISMATCH) == 1


def test_late_failure_puts_a_settled_refund_back_in_front_of_a_person(paid: World) -> None:
    refund = completed_refund(paid, "RMA-4")
    run_file(paid, [refund_line("txn_1", refund.provider_refund_id, 2_500)])
    run_file(paid, [refund_line("txn_2", refund.provider_refund_id, 2_500, kind=LineKind.REFUND_FAILURE)], file="b")
    stored = paid.repository.get(refund.refund_id)
    assert (stored.status, stored.attention_reason) == (RefundStatus.NEEDS_ATTENTION, "provider_reversed_refund")
    assert paid.publisher.for_refund(refund.refund_id)[-2:] == [RECONCILIATION_MISMATCH, "RefundNeedsAttention"]


def test_refund_made_outside_refundflow_is_published_for_ops_once(paid: World) -> None:
    lines = [refund_line("txn_1", "re_outside", 700)]
    run_file(paid, lines)
    run_file(paid, lines)
    published = [e for e in paid.publisher.events if isinstance(e, ReconciliationEvent)]
    assert len(published) == 1
    assert (published[0].match_class, published[0].reference, published[0].amount) == (
        "unexpected_in_settlement",
        "re_outside",
        Money.of(700, "EUR"),
    )


def test_completed_refund_absent_from_the_file_is_missing(paid: World) -> None:
    refund = completed_refund(paid, "RMA-5")
    reconciler = reconcile(
        [],
        Run(file="f", correlation_id="c", source="stripe"),
        repository=paid.repository,
        recorder=paid.recorder,
        publisher=paid.publisher,
        expected=None,
    )
    # with no dated line there is no period: nothing can be called missing
    assert reconciler.summary.counts == {}
    from refundflow.reconciliation.engine import ExpectedRefund

    expected = [ExpectedRefund(refund.refund_id, refund.provider_refund_id or "", 2_500, "EUR", "COMPLETED")]
    reconciler = reconcile(
        [],
        Run(file="f", correlation_id="c", source="stripe"),
        repository=paid.repository,
        recorder=paid.recorder,
        publisher=paid.publisher,
        expected=expected,
    )
    assert reconciler.summary.counts == {MatchClass.MISSING_IN_SETTLEMENT.value: 1}
    assert paid.repository.timeline(refund.refund_id)[-1].details["match_class"] == "missing_in_settlement"
    assert Outcome.RECORDED.value in reconciler.summary.outcomes


def test_refunds_are_found_by_provider_refund_id(paid: World) -> None:
    refund = completed_refund(paid, "RMA-6")
    found = paid.repository.refunds_by_provider_refund_id([refund.provider_refund_id or "", "re_nobody"])
    assert list(found) == [refund.provider_refund_id]
    entry = found[refund.provider_refund_id or ""]
    assert (entry.refund_id, entry.status, entry.amount) == (refund.refund_id, RefundStatus.COMPLETED, refund.amount)


def test_a_mismatch_of_no_refund_reaches_ops_once(paid: World) -> None:
    from refundflow.domain.notifications import notify_ops_of_mismatch

    # GIVEN a fee-only line published as a mismatch
    fee = SettlementLine(
        source="stripe",
        line_no=3,
        line_id="txn_fee",
        kind=LineKind.FEE,
        reference="fee_1",
        amount=0,
        currency="EUR",
        fee=150,
        net=-150,
        booked_on=None,
    )
    run_file(paid, [fee])
    (event,) = [e for e in paid.publisher.events if isinstance(e, ReconciliationEvent)]
    # WHEN the ops queue delivers it twice
    for _ in range(2):
        notify_ops_of_mismatch(event, repository=paid.repository, mailer=paid.mailer, ops_email="ops@example.com")
    # THEN ops got one e-mail naming the class and the line
    (sent,) = paid.mailer.sent
    assert (sent["to"], sent["data"]["status"]) == ("ops@example.com", "fee_only")
    assert "txn_fee" in sent["data"]["details"]


def test_a_line_repeated_in_another_batch_is_a_duplicate_and_reruns_stay_idle(paid: World) -> None:
    from refundflow.reconciliation.run import Reconciler

    refund = completed_refund(paid, "RMA-7")
    first = refund_line("txn_1", refund.provider_refund_id, 2_500)
    repeated = first._replace(line_no=40)  # the same provider line id again, further down the file
    run = Run(file="settlement/stripe/c.csv", correlation_id="c", source="stripe")

    def batch(lines):
        # each Distributed Map batch has its own matcher: only the markers know the other batches
        return Reconciler(run, paid.repository, paid.recorder, paid.publisher).match_batch(lines)

    for _ in range(2):
        outcomes = [applied.outcome for applied in batch([first]) + batch([repeated])]
    assert outcomes == [Outcome.ALREADY_DONE, Outcome.ALREADY_DONE]
    assert paid.repository.get(refund.refund_id).status is RefundStatus.SETTLED
    mismatches = [e for e in paid.repository.timeline(refund.refund_id) if e.type == RECONCILIATION_MISMATCH]
    assert [(e.details["match_class"], e.details["line_no"]) for e in mismatches] == [("duplicate_line", 40)]


def test_a_refund_is_missing_once_and_never_after_a_file_named_it(paid: World) -> None:
    from refundflow.reconciliation.engine import ExpectedRefund

    differs = completed_refund(paid, "RMA-8")
    absent = completed_refund(paid, "RMA-9")
    # GIVEN a first file settling one refund with a difference, and naming neither the other
    run_file(paid, [refund_line("txn_1", differs.provider_refund_id, 2_499)], file="a.csv")
    expected = [
        ExpectedRefund(refund.refund_id, refund.provider_refund_id or "", 2_500, "EUR", "COMPLETED")
        for refund in (differs, absent)
    ]

    def later_file(name: str) -> dict[str, int]:
        reconciler = reconcile(
            [],
            Run(file=name, correlation_id="c", source="stripe"),
            repository=paid.repository,
            recorder=paid.recorder,
            publisher=paid.publisher,
            expected=expected,
        )
        return dict(reconciler.summary.outcomes)

    # WHEN two later files do not name either
    assert later_file("b.csv") == {"nothing_to_do": 1, "recorded": 1}
    assert later_file("c.csv") == {"nothing_to_do": 1, "already_done": 1}

    # THEN only the refund no file ever named is missing, and only once
    def classes(refund: Refund) -> list[str]:
        return [
            entry.details["match_class"]
            for entry in paid.repository.timeline(refund.refund_id)
            if entry.type == RECONCILIATION_MISMATCH
        ]

    assert classes(absent) == ["missing_in_settlement"]
    assert classes(differs) == ["amount_differs"]


def test_a_bank_credit_matching_its_payout_publishes_nothing(paid: World) -> None:
    from refundflow.reconciliation.apply import apply_finding
    from refundflow.reconciliation.engine import BankMatcher
    from refundflow.reconciliation.records import BankLine, Direction

    # GIVEN a payout the settlement announced and the bank credit for it, to the cent
    matcher = BankMatcher({"po_1": (7_500, "EUR")})
    finding = matcher.match(BankLine("camt", 1, "B-1", Direction.CREDIT, 7_500, "EUR", None, "STRIPE PAYOUT po_1"))
    assert finding.match_class is MatchClass.MATCHED
    # WHEN it is applied THEN nobody is told of a mismatch
    applied = apply_finding(
        finding,
        Run(file="bank.xml", correlation_id="c"),
        repository=paid.repository,
        recorder=paid.recorder,
        publisher=paid.publisher,
    )
    assert applied.outcome is Outcome.NOTHING_TO_DO
    assert paid.publisher.events == []


# ---------------------------------------------------------------- refunds made outside refundflow (issue 12)


def recorded_outside(env: World, amount: int) -> Refund:
    """A refund someone made in the provider's dashboard, recorded from its news (origin external)."""
    outside = env.provider.refund_outside(PAYMENT, Money.of(amount, "EUR"))
    env.deliver(provider_event(outside))
    return env.repository.get(external_refund_id("stripe", outside.provider_refund_id))


def test_a_recorded_external_refund_matches_its_settlement_line_and_settles(paid: World) -> None:
    # GIVEN refundflow's refund of the payment (booked on its invoice), then 7.00 refunded in the dashboard, recorded
    # and booked from the bus
    ours = completed_refund(paid, "RMA-1")
    external = recorded_outside(paid, 700)
    issued = [e for e in paid.publisher.events if e.refund_id == external.refund_id and e.detail_type == "RefundIssued"]
    book_external_refund(issued[-1], recorder=paid.recorder, books=paid.books, max_attempts=5)
    assert paid.repository.get(external.refund_id).status is RefundStatus.COMPLETED
    # WHEN the settlement file holds both refunds' lines
    lines = [
        refund_line("txn_1", ours.provider_refund_id or "", 2_500),
        refund_line("txn_2", external.provider_refund_id or "", 700),
    ]
    first = run_file(paid, lines)
    # THEN the dashboard refund's line matches its external record (found by its PROVIDER_REFUND# claim), and it
    # settles like ours: no unexpected_in_settlement, nothing for ops
    assert first.summary.counts == {"matched": 2}
    assert paid.repository.get(external.refund_id).status is RefundStatus.SETTLED
    assert not [e for e in paid.publisher.events if isinstance(e, ReconciliationEvent)]


def test_an_external_refund_not_booked_yet_still_matches_and_a_different_amount_is_its_own_mismatch(
    paid: World,
) -> None:
    # GIVEN a dashboard refund of 7.00 recorded with no invoice known (a person books it: NEEDS_ATTENTION)
    external = recorded_outside(paid, 700)
    assert external.status is RefundStatus.NEEDS_ATTENTION
    # WHEN its line says 7.50
    first = run_file(paid, [refund_line("txn_1", external.provider_refund_id or "", 750)])
    # THEN it is that refund's amount difference, on its own timeline, not a line of nobody's
    assert first.summary.counts == {"amount_differs": 1}
    assert paid.publisher.for_refund(external.refund_id)[-1] == RECONCILIATION_MISMATCH
    assert not [e for e in paid.publisher.events if isinstance(e, ReconciliationEvent)]
