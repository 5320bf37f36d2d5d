"""The matching engine: every class, on hand-made lines and on generated ones."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow.reconciliation.engine import BankMatcher, ExpectedRefund, MatchClass, SettlementMatcher
from refundflow.reconciliation.records import BankLine, Direction, LineKind, SettlementLine

OURS = {
    "re_1": ExpectedRefund("r-1", "re_1", 2500, "EUR", "COMPLETED"),
    "re_2": ExpectedRefund("r-2", "re_2", 1000, "EUR", "COMPLETED"),
    "re_3": ExpectedRefund("r-3", "re_3", 700, "JPY", "COMPLETED"),
    "re_4": ExpectedRefund("r-4", "re_4", 300, "EUR", "SETTLED"),
}


def line(line_id, kind, reference, amount, currency="EUR", *, fee=0, payout="po_1", net=None):
    sign = -1 if kind in (LineKind.REFUND, LineKind.FEE, LineKind.PAYOUT) else 1
    return SettlementLine(
        source="stripe",
        line_no=0,
        line_id=line_id,
        kind=kind,
        reference=reference,
        amount=amount,
        currency=currency,
        fee=fee,
        net=sign * amount - fee if net is None else net,
        booked_on=None,
        payout_id=None if kind is LineKind.PAYOUT else payout,
    )


def test_each_settlement_class():
    matcher = SettlementMatcher(OURS)
    cases = [
        (line("t1", LineKind.REFUND, "re_1", 2500), MatchClass.MATCHED, "r-1", 0),
        (line("t2", LineKind.REFUND, "re_2", 999), MatchClass.AMOUNT_DIFFERS, "r-2", -1),
        (line("t3", LineKind.REFUND, "re_3", 700, "EUR"), MatchClass.CURRENCY_DIFFERS, "r-3", 0),
        (line("t4", LineKind.REFUND, "re_outside", 4200), MatchClass.UNEXPECTED_IN_SETTLEMENT, None, 0),
        (line("t1", LineKind.REFUND, "re_1", 2500), MatchClass.DUPLICATE_LINE, "r-1", 0),
        (line("t5", LineKind.REFUND, "re_1", 2500), MatchClass.DUPLICATE_LINE, "r-1", 0),
        (line("t6", LineKind.FEE, "fee_1", 0, fee=150), MatchClass.FEE_ONLY, None, 0),
        (line("t7", LineKind.REFUND_FAILURE, "re_4", 300, net=300), MatchClass.LATE_FAILURE, "r-4", 0),
        (line("t8", LineKind.CHARGE, "ch_1", 10000), MatchClass.NOT_RECONCILED, None, 0),
    ]
    for settlement_line, expected, refund_id, difference in cases:
        finding = matcher.match(settlement_line)
        assert (finding.match_class, finding.refund_id, finding.difference) == (expected, refund_id, difference), (
            settlement_line.line_id
        )
    # re_4 was settled before; re_1..re_3 appeared; nothing else was expected
    missing = ExpectedRefund("r-9", "re_9", 5, "EUR", "COMPLETED")
    findings = matcher.finish([ours for ours in OURS.values() if ours.status == "COMPLETED"] + [missing])
    assert [(f.match_class, f.refund_id) for f in findings] == [(MatchClass.MISSING_IN_SETTLEMENT, "r-9")]


def test_payout_whose_lines_do_not_add_up_is_reported_with_the_difference():
    matcher = SettlementMatcher(OURS)
    matcher.match(line("c", LineKind.CHARGE, "ch", 10000))
    matcher.match(line("r", LineKind.REFUND, "re_1", 2500))
    matcher.match(line("p", LineKind.PAYOUT, "po_1", 7499))
    (finding,) = matcher.finish()
    assert (finding.match_class, finding.reference, finding.difference) == (MatchClass.PAYOUT_AMOUNT_DIFFERS, "po_1", 1)
    assert matcher.announced_payouts() == {"po_1": (7499, "EUR")}


def bank(line_id, amount, text, direction=Direction.CREDIT, currency="EUR"):
    return BankLine("camt", 0, line_id, direction, amount, currency, None, text)


def test_bank_lines_against_announced_payouts():
    matcher = BankMatcher({"po_1": (7500, "EUR"), "AcmeShopEU batch 42": (9195, "EUR"), "po_3": (10, "EUR")})
    assert matcher.match(bank("b1", 7500, "STRIPE PAYOUT PO_1")).match_class is MatchClass.MATCHED
    differs = matcher.match(bank("b2", 9190, "Adyen N.V. AcmeShopEU batch 42"))
    assert (differs.match_class, differs.difference) == (MatchClass.PAYOUT_AMOUNT_DIFFERS, -5)
    assert matcher.match(bank("b3", 7500, "STRIPE PAYOUT po_1")).match_class is MatchClass.DUPLICATE_LINE
    assert matcher.match(bank("b1", 7500, "STRIPE PAYOUT po_1")).match_class is MatchClass.DUPLICATE_LINE
    assert matcher.match(bank("b4", 80, "wire fee", Direction.DEBIT)).match_class is MatchClass.NOT_RECONCILED
    assert [(f.match_class, f.reference) for f in matcher.finish()] == [(MatchClass.PAYOUT_NOT_FOUND, "po_3")]


refund_lines = st.lists(
    st.tuples(st.sampled_from(["re_1", "re_2", "re_3", "re_x"]), st.integers(0, 3000), st.sampled_from(["EUR", "JPY"])),
    max_size=30,
)


@settings(max_examples=200)
@given(refund_lines)
def test_every_line_gets_exactly_one_class_and_rerunning_gives_the_same_classes(rows):
    lines = [line(f"t{i}", LineKind.REFUND, ref, amount, currency) for i, (ref, amount, currency) in enumerate(rows)]

    def run():
        matcher = SettlementMatcher(OURS)
        return [matcher.match(item) for item in lines], matcher.finish(OURS.values())

    first, second = run(), run()
    assert first == second
    second = first[0]
    # a refund is matched at most once, and only with its own amount and currency
    matched = [f for f in second if f.match_class is MatchClass.MATCHED]
    assert len({f.reference for f in matched}) == len(matched)
    for finding in matched:
        ours = OURS[finding.reference]
        assert (finding.amount, finding.currency) == (ours.amount, ours.currency)
    # only the first line of a refund id is compared; every later one is a duplicate
    firsts = {}
    for finding in second:
        firsts.setdefault(finding.reference, finding)
    for finding in second:
        if firsts[finding.reference] is not finding:
            assert finding.match_class is MatchClass.DUPLICATE_LINE


def test_a_payout_adds_up_its_own_currency_and_one_no_line_names_is_not_checked():
    matcher = SettlementMatcher(OURS)
    matcher.match(line("c", LineKind.CHARGE, "ch", 10_000))
    matcher.match(line("j", LineKind.REFUND, "re_3", 700, "JPY"))  # another currency under the same payout id
    matcher.match(line("p", LineKind.PAYOUT, "po_1", 10_000))
    matcher.match(line("w", LineKind.PAYOUT, "wd_1", 5_000))  # a withdrawal no line names (PayPal)
    assert matcher.finish() == []
    assert matcher.announced_payouts() == {"po_1": (10_000, "EUR"), "wd_1": (5_000, "EUR")}


def test_batches_merged_find_what_no_single_batch_can():
    from refundflow.reconciliation.engine import absorb_state, matcher_state

    # GIVEN a payout whose lines fall in two batches and whose announcement in a third is one cent high
    batches = [
        [line("a", LineKind.CHARGE, "ch_a", 6_000)],
        [line("b", LineKind.CHARGE, "ch_b", 4_000)],
        [line("p", LineKind.PAYOUT, "po_1", 10_001)],
    ]
    states = []
    for batch in batches:
        matcher = SettlementMatcher(OURS)
        for item in batch:
            matcher.match(item)
        assert matcher.finish() == []  # alone, no batch sees a difference
        states.append(json.loads(json.dumps(matcher_state(matcher))))
    # WHEN the summary absorbs the three
    summary = SettlementMatcher(OURS)
    for state in states:
        absorb_state(summary, state)
    # THEN the payout is one cent more than its lines
    (finding,) = summary.finish()
    assert (finding.match_class, finding.difference) == (MatchClass.PAYOUT_AMOUNT_DIFFERS, -1)
