"""Split tenders: the request (tenders XOR payment), the parent refund's steps (look-up of every tender, one policy
decision on the total, allocation into legs, each leg its own refund approved by its parent), what the legs add up
to (completed, failed, or NEEDS_ATTENTION with remedies, never silently short), idempotency after a crash, and a
forged leg that never pays."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from refundflow.domain import split_tenders
from refundflow.domain.allocation import LegAllocation, TenderBalance
from refundflow.domain.approval import ApproverIdentity, decide_approval
from refundflow.domain.books import update_invoice
from refundflow.domain.failures import handle_failure
from refundflow.domain.intake import GENERIC_SOURCE, request_fingerprint, source_refund_id
from refundflow.domain.payments import issue_refund, look_up_payment, read_payment, reserve_amount
from refundflow.domain.policy_step import evaluate_policy
from refundflow.domain.recorder import PROVIDER_REVERSED
from refundflow.domain.split_remedies import choose_remedy, remedy_execution_name
from refundflow.domain.split_tenders import LEG_FAILED, STORE_CREDIT_CREDITED, aggregate, leg_refund_id
from refundflow.domain.store_credit import customer_key
from refundflow.domain.tickets import failed_legs_note
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import WaitFor, register_wait
from refundflow.errors import (
    AuthenticationFailed,
    Forbidden,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    PolicyViolation,
    RejectedError,
)
from refundflow.models import (
    LegStatus,
    PaymentReference,
    Refund,
    RefundRequestBody,
    StepResult,
    TenderKind,
    TenderPayment,
    VelocityContribution,
)
from refundflow.money import Money
from refundflow.policy import ActivePolicy, Policy, PolicySourceSettings, load_policy
from refundflow.ports import ProviderRefundStatus
from refundflow.status import RefundStatus
from tests.support.fakes import TIMING, Outcome, World, provider_event, refund_request_body

S = RefundStatus
CARD = "pi_card"
GIFT = "pi_gift"
PAID_EUR = {"minor_units": 2_000, "currency": "EUR"}


def eur(minor: int) -> Money:
    return Money.of(minor, "EUR")


def policy() -> ActivePolicy:
    return ActivePolicy(source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=None))


def tenders(*payment_ids: str, kinds: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"payment": {"provider": "stripe", "payment_id": payment_id}, "kind": kinds[index] if kinds else "card"}
        for index, payment_id in enumerate(payment_ids)
    ]


def split_body(
    *,
    amount: int | None = 3_000,
    reference: str = "RMA-S1",
    allocation: str | None = "proportional",
    reason: str = "damaged",
    **extra: Any,
) -> RefundRequestBody:
    document: dict[str, Any] = {"tenders": tenders(CARD, GIFT), **extra}
    if allocation is not None:
        document["allocation"] = allocation
    return refund_request_body(reference=reference, amount=amount, payment=None, reason=reason, **document)


class Reader:
    """The tenders' platform function, in process: ``read_payment`` on the fake provider."""

    def __init__(self, env: World) -> None:
        self.env = env
        self.reads: list[str] = []

    def read(self, payment: PaymentReference) -> TenderPayment:
        self.reads.append(payment.payment_id)
        return read_payment(payment, recorder=self.env.recorder, provider=self.env.provider)


@pytest.fixture
def split(env: World) -> World:
    """An order paid 60.00 by card and 40.00 by a second payment (both at the fake provider)."""
    env.provider.add_payment(CARD, eur(6_000))
    env.provider.add_payment(GIFT, eur(4_000))
    return env


def approved_parent(env: World, body: RefundRequestBody | None = None) -> str:
    """Accepted, validated, looked up across its tenders and approved by the policy (nothing reserved)."""
    refund_id = env.accept(body or split_body()).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up(env, refund_id)
    decided = evaluate_policy(refund_id, recorder=env.recorder, policy=policy())
    assert (decided.status, decided.outcome, decided.provider) == (S.APPROVED, "APPROVED", "split")
    assert reserve_amount(refund_id, recorder=env.recorder).outcome == "RESERVED"
    return refund_id


def look_up(env: World, refund_id: str, reader: Reader | None = None, with_policy: Policy | None = None) -> StepResult:
    return split_tenders.look_up_payment(
        refund_id, recorder=env.recorder, reader=reader or Reader(env), policy=with_policy or policy().select().policy
    )


def issue(env: World, refund_id: str, with_policy: Policy | None = None) -> StepResult:
    return split_tenders.issue_refund(
        refund_id,
        recorder=env.recorder,
        reader=Reader(env),
        starter=env.starter,
        timing=TIMING,
        policy=with_policy or policy().select().policy,
        ledger=env.store_credit,
    )


def poll(env: World, refund_id: str) -> StepResult:
    return split_tenders.poll_refund(
        refund_id, recorder=env.recorder, starter=env.starter, timing=TIMING, ledger=env.store_credit
    )


def run_leg(env: World, leg_id: str) -> Refund:
    """A leg's own workflow, in process: validate, look up, its parent's decision, reserve, refund."""
    validate_refund(leg_id, recorder=env.recorder)
    look_up_payment(leg_id, recorder=env.recorder, provider=env.provider)
    decided = evaluate_policy(leg_id, recorder=env.recorder, policy=policy())
    if decided.outcome == "APPROVED":
        reserve_amount(leg_id, recorder=env.recorder)
    if decided.status is not S.REJECTED:
        issue_refund(leg_id, recorder=env.recorder, provider=env.provider)
    return env.repository.get(leg_id)


# ---------------------------------------------------------------------------- the request


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"payment": {"provider": "stripe", "payment_id": CARD}, "tenders": tenders(CARD, GIFT)}, "exactly one"),
        ({}, "Field required"),
        ({"tenders": tenders(CARD)}, "at least 2"),
        ({"tenders": tenders(CARD, CARD)}, "distinct payments"),
        ({"tenders": [*tenders(CARD), {"kind": "card"}]}, "needs its payment"),
        (
            {"tenders": [*tenders(CARD, GIFT), {"kind": "store_credit", "payment": tenders(CARD)[0]["payment"]}]},
            "names no payment",
        ),
        ({"tenders": [{"kind": "store_credit", "paid": PAID_EUR}, *tenders(CARD)]}, "first tender must be a payment"),
        ({"tenders": [*tenders(CARD), {"kind": "store_credit"}]}, "needs paid"),
        ({"tenders": [*tenders(CARD), {"kind": "store_credit", "paid": {**PAID_EUR, "minor_units": 0}}]}, "needs paid"),
        ({"tenders": [{**tenders(CARD)[0], "paid": PAID_EUR}, *tenders(GIFT)]}, "paid is for a store_credit"),
        ({"payment": {"provider": "stripe", "payment_id": CARD}, "allocation": "proportional"}, "for tenders only"),
        ({"tenders": tenders(*(f"pi_{n}" for n in range(9)))}, "at most 8"),
        (
            {
                "tenders": [*tenders(CARD), {"kind": "store_credit", "paid": {**PAID_EUR, "currency": "USD"}}],
                "amount": {"minor_units": 1_000, "currency": "EUR"},
            },
            "in the refund's currency",
        ),
    ],
)
def test_a_request_names_a_payment_or_two_to_eight_distinct_tenders(document: dict[str, Any], problem: str) -> None:
    base: dict[str, Any] = {
        "reason": "damaged",
        "customer": {"email": "jane@example.com"},
        "source": {"system": "returns-portal", "reference": "RMA-1"},
    }
    with pytest.raises(ValidationError, match=problem):
        RefundRequestBody.model_validate({**base, **document})


def test_intake_refuses_only_a_rule_name_that_is_none_of_refundflow_s_and_keeps_a_store_credit_tender(
    split: World,
) -> None:
    # GIVEN a rule name refundflow does not have WHEN it is sent THEN 400, nothing stored or started
    with pytest.raises(InvalidRequest) as unknown:
        split.accept(split_body(reference="RMA-cheapest", allocation="cheapest_first"), "dlv-cheapest")
    assert unknown.value.code == "unknown_allocation_rule"
    assert split.repository.find(source_refund_id(GENERIC_SOURCE, "returns-portal", "RMA-cheapest")) is None
    assert split.starter.calls == []
    # AND the merchant's expression and a store-credit tender (what the order paid with it) are accepted
    body = split_body(
        reference="RMA-SC",
        allocation="expression",
        tenders=[*tenders(CARD), {"kind": "store_credit", "paid": PAID_EUR}],
    )
    parent = split.accept(body, "dlv-sc").refund
    assert parent.allocation_rule == "expression"
    assert [(tender.kind, tender.payment, tender.paid) for tender in parent.tenders][1] == (
        TenderKind.STORE_CREDIT,
        None,
        eur(2_000),
    )
    assert split.repository.get(parent.refund_id).tenders == parent.tenders
    assert len(split.starter.calls) == 1


def test_the_parent_keeps_its_tenders_and_its_first_payment_and_a_redelivery_is_the_same_refund(split: World) -> None:
    first = split.accept(split_body(), "dlv-1")
    again = split.accept(split_body(), "dlv-2")
    refund = split.repository.get(first.refund.refund_id)
    assert again.duplicate
    assert again.refund.refund_id == refund.refund_id
    assert refund.payment.payment_id == CARD
    assert [tender.payment.payment_id for tender in refund.tenders] == [CARD, GIFT]
    assert refund.allocation_rule == "proportional"
    # one of a payment hashes as before tenders existed: its fingerprint ignores the absent fields
    single = refund_request_body(reference="RMA-single")
    assert "tenders" not in single.model_dump(mode="json", exclude_none=True)
    assert request_fingerprint(single) != request_fingerprint(split_body())


# ---------------------------------------------------------------------------- the parent's steps


def test_look_up_reads_every_tender_and_the_parent_is_decided_once_on_its_total(split: World) -> None:
    refund_id = split.accept(split_body(amount=None)).refund.refund_id
    validate_refund(refund_id, recorder=split.recorder)
    reader = Reader(split)
    looked_up = look_up(split, refund_id, reader)
    assert looked_up.provider == "split"
    assert reader.reads == [CARD, GIFT]
    # the amount is everything the tenders have left; each tender's balance is open
    assert split.repository.get(refund_id).amount == eur(10_000)
    assert split.balance(CARD)["remaining"] == 6_000
    assert split.balance(GIFT)["remaining"] == 4_000
    decided = evaluate_policy(refund_id, recorder=split.recorder, policy=policy())
    parent = split.repository.get(refund_id)
    # the parent holds nothing: each leg holds its own share
    assert parent.reservation is None
    assert decided.outcome in {"APPROVED", "APPROVAL_REQUIRED"}
    assert split.balance(CARD)["reserved"] == split.balance(GIFT)["reserved"] == 0


def test_look_up_refuses_more_than_the_tenders_have_or_another_currency(split: World) -> None:
    too_much = split.accept(split_body(amount=10_001, reference="RMA-much"), "dlv-much").refund.refund_id
    validate_refund(too_much, recorder=split.recorder)
    with pytest.raises(PolicyViolation) as refused:
        look_up(split, too_much)
    assert refused.value.code == "exceeds_tenders"
    other = split_body(reference="RMA-usd", amount=None, lines=[])
    other = other.model_copy(update={"amount": Money.of(500, "USD")})
    usd = split.accept(other, "dlv-usd").refund.refund_id
    validate_refund(usd, recorder=split.recorder)
    with pytest.raises(PolicyViolation) as mismatch:
        look_up(split, usd)
    assert mismatch.value.code == "currency_mismatch"


def test_the_refund_step_divides_the_amount_into_legs_each_its_own_refund_then_the_parent_waits(split: World) -> None:
    refund_id = approved_parent(split)
    result = issue(split, refund_id)
    parent = split.repository.get(refund_id)
    assert (result.status, result.outcome, result.provider) == (S.REFUND_PENDING, "REFUND_PENDING", "split")
    # 30.00 proportionally to 60.00 and 40.00 paid: 18.00 and 12.00
    assert [(leg.payment.payment_id, leg.amount.minor_units, leg.status) for leg in parent.legs] == [
        (CARD, 1_800, LegStatus.SUBMITTED),
        (GIFT, 1_200, LegStatus.SUBMITTED),
    ]
    for leg in parent.legs:
        assert leg.refund_id == leg_refund_id(refund_id, leg.index)
        child = split.repository.get(leg.refund_id)
        assert (child.status, child.parent_refund_id, child.requested_amount) == (S.RECEIVED, refund_id, leg.amount)
        assert child.invoice is None
        assert child.source.ticket_id is None
        assert child.payment == leg.payment
    assert [call[0] for call in split.starter.calls[1:]] == [leg.refund_id for leg in parent.legs]


def test_every_leg_paid_completes_the_parent_through_its_one_invoice(split: World) -> None:
    refund_id = approved_parent(split)
    issue(split, refund_id)
    legs = split.repository.get(refund_id).legs
    assert poll(split, refund_id).outcome == "REFUND_PENDING"  # nothing moved yet: it waits
    for leg in legs:
        assert leg.refund_id is not None
        child = run_leg(split, leg.refund_id)
        assert child.status is S.COMPLETED
        assert child.policy is not None
        assert child.policy.rule_id == "split_tender_parent"
    # each leg is its own provider refund under its own key, of its own amount
    created = split.provider.calls_to("create_refund")
    assert sorted(
        (call.arguments["request"].payment.payment_id, call.arguments["request"].amount.minor_units) for call in created
    ) == [(CARD, 1_800), (GIFT, 1_200)]
    assert len(set(split.provider.idempotency_keys)) == 2
    result = poll(split, refund_id)
    assert (result.status, result.outcome, result.books) == (S.REFUNDED, "REFUNDED", "xero")
    assert [leg.status for leg in split.repository.get(refund_id).legs] == [LegStatus.SUCCEEDED] * 2
    update_invoice(refund_id, recorder=split.recorder, books=split.books)
    assert split.repository.get(refund_id).status is S.COMPLETED
    # the balances hold what each leg refunded
    assert (split.balance(CARD)["refunded"], split.balance(GIFT)["refunded"]) == (1_800, 1_200)


def test_the_refund_step_run_twice_creates_each_leg_once(split: World) -> None:
    refund_id = approved_parent(split)
    issue(split, refund_id)
    again = issue(split, refund_id)
    assert again.outcome == "REFUND_PENDING"
    leg_ids = [leg.refund_id or "" for leg in split.repository.get(refund_id).legs]
    # one execution per leg (and the parent's own), started again by name only: Step Functions keeps one
    assert sorted(split.starter.executions) == sorted([split.starter.calls[0][0], *leg_ids])
    for leg_id in leg_ids:
        created = [entry for entry in split.repository.timeline(leg_id) if entry.type == "SplitLegRequested"]
        assert len(created) == 1


def test_a_crash_after_the_first_leg_was_created_resumes_with_the_second(
    split: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund_id = approved_parent(split)
    real_create = split.repository.create
    made: list[str] = []

    def crash_on_second(refund: Refund, **kwargs: Any) -> Any:
        if made:
            raise RuntimeError("the process stopped")
        made.append(refund.refund_id)
        return real_create(refund, **kwargs)

    monkeypatch.setattr(split.repository, "create", crash_on_second)
    with pytest.raises(RuntimeError):
        issue(split, refund_id)
    parent = split.repository.get(refund_id)
    assert parent.status is S.REFUND_SUBMITTED
    assert split.repository.find(parent.legs[1].refund_id or "") is None
    monkeypatch.setattr(split.repository, "create", real_create)
    # the workflow retries the step: the legs are the ones recorded, the first is not made twice
    assert issue(split, refund_id).outcome == "REFUND_PENDING"
    assert all(split.repository.find(leg.refund_id or "") is not None for leg in parent.legs)
    assert [leg.amount for leg in split.repository.get(refund_id).legs] == [leg.amount for leg in parent.legs]


# ---------------------------------------------------------------------------- what the legs add up to


def test_a_leg_refused_after_another_paid_needs_a_person_with_remedies(split: World) -> None:
    refund_id = approved_parent(split)
    issue(split, refund_id)
    first, second = split.repository.get(refund_id).legs
    assert first.refund_id is not None
    assert second.refund_id is not None
    run_leg(split, first.refund_id)
    split.provider.outcomes.append(Outcome.REJECTED)
    with pytest.raises(RejectedError) as refused:
        run_leg(split, second.refund_id)
    handle_failure(second.refund_id, "RejectedError", str(refused.value), recorder=split.recorder, max_books_attempts=3)
    assert split.repository.get(second.refund_id).status is S.FAILED
    result = poll(split, refund_id)
    parent = split.repository.get(refund_id)
    assert (result.status, parent.attention_reason) == (S.NEEDS_ATTENTION, f"{LEG_FAILED}:1")
    assert [leg.status for leg in parent.legs] == [LegStatus.SUCCEEDED, LegStatus.FAILED]
    [entry] = [entry for entry in split.repository.timeline(refund_id) if entry.to_status is S.NEEDS_ATTENTION]
    remedies = entry.details["remedies"]
    # the card has 42.00 left, room for the failed 12.00; store credit always
    assert [(remedy["action"], remedy.get("tender")) for remedy in remedies] == [
        ("retry", 1),
        ("move_to_tender", 0),
        ("store_credit", None),
    ]
    # AND the failed leg says them in words, which the ticket's note lists
    assert parent.legs[1].remedies == [
        "retry: send 12.00 EUR to leg 2's card stripe again",
        "move_to_tender 0: send 12.00 EUR to tender 1 (card stripe, 42.00 EUR left to refund)",
        "store_credit: credit 12.00 EUR to the customer's store credit",
    ]
    assert parent.legs[0].remedies == []
    [note] = failed_legs_note(parent)
    assert "Remedies: retry: send 12.00 EUR" in note
    assert "store_credit: credit 12.00 EUR to the customer's store credit." in note
    assert "RefundNeedsAttention" in split.publisher.for_refund(refund_id)
    # polled again it stays where it is (no second entry)
    poll(split, refund_id)
    assert len([e for e in split.repository.timeline(refund_id) if e.to_status is S.NEEDS_ATTENTION]) == 1


@pytest.mark.parametrize(
    ("leg_outcomes", "expected", "reason"),
    [
        ((LegStatus.SUCCEEDED, LegStatus.SUCCEEDED), S.COMPLETED, None),
        ((LegStatus.FAILED, LegStatus.FAILED), S.FAILED, None),
        ((LegStatus.SUCCEEDED, LegStatus.FAILED), S.NEEDS_ATTENTION, f"{LEG_FAILED}:1"),
        ((LegStatus.FAILED, LegStatus.SUCCEEDED), S.NEEDS_ATTENTION, f"{LEG_FAILED}:0"),
        ((LegStatus.SUCCEEDED, LegStatus.SUBMITTED), S.REFUND_PENDING, None),
        ((LegStatus.FAILED, LegStatus.SUBMITTED), S.REFUND_PENDING, None),
    ],
)
def test_what_the_legs_add_up_to(
    split: World, leg_outcomes: tuple[LegStatus, LegStatus], expected: RefundStatus, reason: str | None
) -> None:
    refund_id = approved_parent(split, split_body(invoice=None))
    issue(split, refund_id)
    parent = split.repository.get(refund_id)
    legs = [
        leg.model_copy(update={"status": status, "failure": "refused" if status is LegStatus.FAILED else None})
        for leg, status in zip(parent.legs, leg_outcomes, strict=True)
    ]
    after = aggregate(parent, legs, recorder=split.recorder)
    assert (after.status, after.attention_reason) == (expected, reason)
    if expected is S.FAILED:
        assert after.failure is not None
        assert after.failure.code == "split_legs_failed"


def test_a_leg_that_needs_a_person_keeps_its_parent_waiting(split: World) -> None:
    refund_id = approved_parent(split, split_body(invoice=None))
    issue(split, refund_id)
    first = split.repository.get(refund_id).legs[0]
    assert first.refund_id is not None
    split.provider.outcomes.append(Outcome.PENDING)
    run_leg(split, first.refund_id)
    leg = split.repository.get(first.refund_id)
    split.recorder.move(leg, S.NEEDS_ATTENTION, actor="tests", changes={"attention_reason": "provider_outcome_unknown"})
    assert poll(split, refund_id).outcome == "REFUND_PENDING"
    assert [leg.status for leg in split.repository.get(refund_id).legs] == [LegStatus.SUBMITTED] * 2


def test_the_last_leg_paid_moves_and_resumes_its_waiting_parent_at_once(split: World) -> None:
    # GIVEN a parent waiting for its legs' outcome (its workflow parked on a task token)
    refund_id = approved_parent(split)
    issue(split, refund_id)
    assert (
        register_wait(
            refund_id, WaitFor.REFUND_OUTCOME, "token-parent", repository=split.repository, callbacks=split.callbacks
        )
        is False
    )
    first, second = split.repository.get(refund_id).legs
    # WHEN the first leg is paid, nothing resumes; when the second is, the parent is REFUNDED and resumed
    leg = run_leg(split, first.refund_id or "")
    assert split_tenders.after_leg(refund_id, leg.status, recorder=split.recorder, callbacks=split.callbacks) is False
    assert split.repository.get(refund_id).status is S.REFUND_PENDING
    leg = run_leg(split, second.refund_id or "")
    assert split_tenders.after_leg(refund_id, leg.status, recorder=split.recorder, callbacks=split.callbacks)
    assert split.repository.get(refund_id).status is S.REFUNDED
    [(token, output)] = split.callbacks.succeeded
    assert (token, output["outcome"], output["provider"], output["books"]) == (
        "token-parent",
        "REFUNDED",
        "split",
        "xero",
    )


# ---------------------------------------------------------------------------- a leg nobody approved


def test_a_forged_leg_of_an_unapproved_parent_is_rejected_and_never_pays(split: World) -> None:
    # GIVEN a parent that was only accepted (nobody decided it), and a refund claiming to be its leg
    parent_id = split.accept(split_body()).refund.refund_id
    forged_id = leg_refund_id(parent_id, 0)
    forged = Refund.model_validate(
        {
            **split.repository.get(parent_id).model_dump(),
            "refund_id": forged_id,
            "tenders": [],
            "allocation_rule": None,
            "invoice": None,
            "requested_amount": eur(1_800).model_dump(),
            "parent_refund_id": parent_id,
            "source": {"system": "returns-portal", "reference": "RMA-forged"},
        }
    )
    split.repository.create(forged, actor="tests", delivery=None)
    # WHEN its workflow runs
    leg = run_leg(split, forged_id)
    # THEN the policy step rejects it: nothing reserved, nothing sent
    assert leg.status is S.REJECTED
    assert leg.failure is not None
    assert leg.failure.code == "parent_not_approved"
    assert split.provider.calls_to("create_refund") == []
    assert split.balance(CARD)["reserved"] == 0


def test_a_leg_the_approved_parent_does_not_list_is_rejected(split: World) -> None:
    refund_id = approved_parent(split)
    issue(split, refund_id)
    listed = split.repository.get(refund_id).legs[0]
    assert listed.refund_id is not None
    # a refund naming the parent with another amount than the parent's leg
    stranger = split.repository.get(listed.refund_id).model_copy(
        update={"refund_id": leg_refund_id(refund_id, 7), "requested_amount": eur(5_000)}
    )
    split.repository.create(stranger, actor="tests", delivery=None)
    assert run_leg(split, stranger.refund_id).status is S.REJECTED
    assert split.provider.calls_to("create_refund") == []


def test_a_leg_counts_nowhere_in_velocity_its_parent_does(split: World) -> None:
    refund_id = approved_parent(split)
    issue(split, refund_id)
    parent = split.repository.get(refund_id)
    leg = split.repository.get(parent.legs[0].refund_id or "")
    assert VelocityContribution.of(leg) is None
    contribution = VelocityContribution.of(parent)
    assert contribution is not None
    assert contribution.amount == eur(3_000)
    # the customer's counters and the by-customer index hold the parent, once
    day = parent.created_at.date()
    [counter] = split.repository.velocity_days(parent.customer.email, day, day)
    assert (counter.count, counter.amounts) == (1, {"EUR": 3_000})
    assert [found.refund_id for found in split.repository.customer_refunds_on(parent.customer.email, day)] == [
        refund_id
    ]


# ---------------------------------------------------------------------------- a person's remedy


def failed_second_leg(env: World) -> str:
    """A parent whose first leg (18.00 to the card) paid and whose second (12.00) the provider refused."""
    refund_id = approved_parent(env)
    issue(env, refund_id)
    first, second = env.repository.get(refund_id).legs
    run_leg(env, first.refund_id or "")
    env.provider.outcomes.append(Outcome.REJECTED)
    with pytest.raises(RejectedError) as refused:
        run_leg(env, second.refund_id or "")
    handle_failure(
        second.refund_id or "", "RejectedError", str(refused.value), recorder=env.recorder, max_books_attempts=3
    )
    poll(env, refund_id)
    assert env.repository.get(refund_id).attention_reason == f"{LEG_FAILED}:1"
    return refund_id


def approver(role: str | None = "team_lead", jti: str | None = "jti-1", bound: str | None = None) -> ApproverIdentity:
    return ApproverIdentity(subject="lee@shop.example", role=role, token_id=jti, bound_refund_id=bound)


def remedy(env: World, refund_id: str, action: Any, tender: int | None = None, **kwargs: Any) -> Refund:
    return choose_remedy(
        refund_id,
        kwargs.pop("leg", 1),
        action,
        tender,
        kwargs.pop("who", approver()),
        recorder=env.recorder,
        policy=policy().select().policy,
        starter=env.starter,
        timing=TIMING,
    )


def test_a_remedy_moves_the_failed_amount_to_a_tender_with_room_and_the_parent_completes(split: World) -> None:
    refund_id = failed_second_leg(split)
    parent = remedy(split, refund_id, "move_to_tender", 0)
    assert parent.status is S.REFUND_PENDING
    new = parent.legs[2]
    assert (new.payment.payment_id, new.amount, new.replaces, new.tender_index) == (CARD, eur(1_200), 1, 0)
    # the new leg is a refund of its own, started; the parent's workflow is started again to wait for it
    assert split.starter.executions[new.refund_id or ""]["refund_id"] == new.refund_id
    assert split.starter.executions[remedy_execution_name(refund_id, 2)]["refund_id"] == refund_id
    assert run_leg(split, new.refund_id or "").status is S.COMPLETED
    # the replaced failed leg no longer counts: every counted leg paid
    assert poll(split, refund_id).status is S.REFUNDED
    assert split.balance(CARD)["refunded"] == 3_000


def test_a_retry_goes_to_the_same_tender_and_the_token_is_spent(split: World) -> None:
    refund_id = failed_second_leg(split)
    parent = remedy(split, refund_id, "retry")
    assert (parent.legs[2].payment.payment_id, parent.legs[2].replaces) == (GIFT, 1)
    split.recorder.move(parent, S.NEEDS_ATTENTION, actor="tests", changes={"attention_reason": f"{LEG_FAILED}:1"})
    with pytest.raises(AuthenticationFailed) as spent:
        remedy(split, refund_id, "retry")
    assert spent.value.code == "token_spent"


@pytest.mark.parametrize(
    ("action", "tender", "kwargs", "error", "code"),
    [
        ("store_credit", 0, {}, InvalidRequest, "invalid_tender"),
        ("move_to_tender", 1, {}, InvalidRequest, "invalid_tender"),
        ("move_to_tender", 5, {}, InvalidRequest, "invalid_tender"),
        ("retry", None, {"leg": 0}, IllegalTransition, "no_failed_leg"),
        ("retry", None, {"who": approver(role="customer")}, Forbidden, "role_not_allowed"),
        ("retry", None, {"who": approver(jti=None)}, AuthenticationFailed, "token_without_jti"),
        ("retry", None, {"who": approver(bound="rf_" + "0" * 32)}, NotFound, "not_found"),
    ],
)
def test_a_remedy_that_cannot_be_carried_out_changes_nothing(
    split: World, action: Any, tender: int | None, kwargs: dict[str, Any], error: type[Exception], code: str
) -> None:
    refund_id = failed_second_leg(split)
    before = split.repository.get(refund_id)
    with pytest.raises(error) as refused:  # type: ignore[call-overload]
        remedy(split, refund_id, action, tender, **kwargs)
    assert getattr(refused.value, "code", None) == code
    assert split.repository.get(refund_id) == before


def test_a_remedy_to_a_tender_without_room_is_refused(split: World) -> None:
    refund_id = failed_second_leg(split)
    split.provider.refund_outside(CARD, eur(4_000))  # the card was refunded elsewhere meanwhile
    read_payment(PaymentReference(provider="stripe", payment_id=CARD), recorder=split.recorder, provider=split.provider)
    with pytest.raises(InvalidRequest) as refused:
        remedy(split, refund_id, "move_to_tender", 0)
    assert refused.value.code == "tender_without_room"


def test_a_parent_a_person_approved_approves_its_legs(split: World) -> None:
    # GIVEN a split refund the policy asks a person to approve (a product return), decided once on its total
    body = split_body(reference="RMA-approved", reason="product_return")
    refund_id = split.accept(body, "dlv-approved").refund.refund_id
    validate_refund(refund_id, recorder=split.recorder)
    look_up(split, refund_id)
    decided = evaluate_policy(refund_id, recorder=split.recorder, policy=policy())
    assert decided.outcome == "APPROVAL_REQUIRED"
    required = split.repository.get(refund_id).policy
    assert required is not None
    # WHEN an approver approves the parent through the approval route's domain
    decide_approval(
        refund_id,
        "approve",
        None,
        approver(role=required.required_role or "team_lead", jti="jti-approval"),
        recorder=split.recorder,
        policy=policy().select().policy,
        callbacks=split.callbacks,
    )
    assert reserve_amount(refund_id, recorder=split.recorder).outcome == "RESERVED"
    issue(split, refund_id)
    # THEN each leg is approved by that decision and paid
    for leg in split.repository.get(refund_id).legs:
        paid = run_leg(split, leg.refund_id or "")
        assert paid.status is S.COMPLETED
        assert paid.policy is not None
        assert paid.policy.rule_id == "split_tender_parent"
    assert poll(split, refund_id).status is S.REFUNDED


def test_news_of_the_first_tender_s_payment_reads_its_leg_never_the_parent(split: World) -> None:
    # GIVEN a parent waiting for its legs (indexed on its first tender's payment, like its card leg)
    refund_id = approved_parent(split, split_body(invoice=None))
    issue(split, refund_id)
    card_leg = split.repository.get(refund_id).legs[0]
    split.provider.outcomes.append(Outcome.PENDING)
    run_leg(split, card_leg.refund_id or "")
    # WHEN the provider sends news of the card payment without refund objects (Stripe's charge.refunded)
    split.deliver(provider_event(payment_id=CARD))
    # THEN the provider is asked about the card leg's refund, never about the parent (which has none there)
    asked = [call.arguments.get("refund_id") for call in split.provider.calls_to("find_refund")]
    asked += [call.arguments.get("provider_refund_id") for call in split.provider.calls_to("get_refund")]
    assert refund_id not in asked
    assert split.repository.get(refund_id).status is S.REFUND_PENDING


def test_a_leg_refused_last_moves_its_waiting_parent_to_a_person_at_once(split: World) -> None:
    # GIVEN a parent parked in its outcome wait, its card leg paid
    refund_id = approved_parent(split)
    issue(split, refund_id)
    register_wait(refund_id, WaitFor.REFUND_OUTCOME, "token-p", repository=split.repository, callbacks=split.callbacks)
    first, second = split.repository.get(refund_id).legs
    paid = run_leg(split, first.refund_id or "")
    assert not split_tenders.after_leg(refund_id, paid.status, recorder=split.recorder, callbacks=split.callbacks)
    # WHEN the other leg's platform refuses it and the catch path fails the leg
    split.provider.outcomes.append(Outcome.REJECTED)
    with pytest.raises(RejectedError) as refused:
        run_leg(split, second.refund_id or "")
    failed = handle_failure(
        second.refund_id or "", "RejectedError", str(refused.value), recorder=split.recorder, max_books_attempts=3
    )
    assert failed.parent_refund_id == refund_id
    assert split_tenders.after_leg(refund_id, failed.status, recorder=split.recorder, callbacks=split.callbacks)
    # THEN the parent needs a person now, and its workflow is told so (not at the wait's end)
    assert split.repository.get(refund_id).attention_reason == f"{LEG_FAILED}:1"
    [(token, output)] = split.callbacks.succeeded
    assert (token, output["outcome"]) == ("token-p", "NEEDS_ATTENTION")
    assert "parent_refund_id" not in output


# ---------------------------------------------------------------------------- the merchant's rule


def merchant_policy(**split_section: Any) -> Policy:
    """The packaged policy with the merchant's own ``split_tenders`` section."""
    document = yaml.safe_load(resources.files("refundflow.policy").joinpath("default_policy.yaml").read_text())
    document["split_tenders"] = split_section
    return load_policy(yaml.safe_dump(document, sort_keys=False), source="merchant.yaml")


def test_a_rule_the_policy_does_not_allow_rejects_the_parent_at_look_up_before_anything_is_decided(
    split: World,
) -> None:
    # GIVEN a merchant who allows only last_captured_first and proportional, and a request naming least_fee_first
    strict = merchant_policy(rule="last_captured_first", allowed_request_rules=["proportional"])
    refund_id = split.accept(split_body(allocation="least_fee_first")).refund.refund_id
    validate_refund(refund_id, recorder=split.recorder)
    reader = Reader(split)
    # WHEN the parent is looked up THEN it is refused for good, before any tender is read or anything decided
    with pytest.raises(PolicyViolation) as refused:
        look_up(split, refund_id, reader, with_policy=strict)
    assert refused.value.code == "allocation_rule_not_allowed"
    assert "least_fee_first" in str(refused.value)
    assert reader.reads == []
    handle_failure(refund_id, "PolicyViolation", str(refused.value), recorder=split.recorder, max_books_attempts=3)
    parent = split.repository.get(refund_id)
    assert parent.status is S.REJECTED
    assert parent.failure is not None
    assert parent.failure.code == "allocation_rule_not_allowed"
    assert parent.policy is None  # never decided
    assert parent.legs == []
    # AND a rule it allows passes the same look-up
    allowed = split.accept(split_body(reference="RMA-S2", allocation="proportional"), "dlv-2").refund.refund_id
    validate_refund(allowed, recorder=split.recorder)
    assert look_up(split, allowed, with_policy=strict).status is S.VALIDATED


def test_the_policy_s_default_rule_divides_a_request_that_names_none(split: World) -> None:
    # GIVEN the packaged policy (last_captured_first) and a request naming no rule
    refund_id = approved_parent(split, split_body(allocation=None))
    issue(split, refund_id)
    parent = split.repository.get(refund_id)
    # THEN the policy's rule divided it: neither payment has a capture time, so the first given takes it all
    assert parent.allocation_rule == "last_captured_first"
    assert [(leg.tender_index, leg.amount.minor_units) for leg in parent.legs] == [(0, 3_000)]


def test_the_policy_s_fees_order_least_fee_first(split: World) -> None:
    # GIVEN card refunds cost 290 bp and gift cards nothing under the merchant's fees (the tenders carry none)
    body = split_body(allocation="least_fee_first", tenders=tenders(CARD, GIFT, kinds=("card", "gift_card")))
    refund_id = approved_parent(split, body)
    issue(split, refund_id)
    # THEN the gift card (no fee) takes the 30.00 first: without the policy's fees the card (given first) would
    assert [(leg.kind, leg.amount.minor_units) for leg in split.repository.get(refund_id).legs] == [
        (TenderKind.GIFT_CARD, 3_000)
    ]


def test_the_merchant_s_expression_sees_the_refund_s_reason(split: World) -> None:
    # GIVEN an expression that sends a damaged item's refund to the second tender first, anything else to the first
    mine = merchant_policy(
        rule="expression", expression="refund.reason == 'damaged' ? (tender.index == 1 ? 0 : 1) : tender.index"
    )
    damaged = approved_parent(split, split_body(allocation=None, amount=5_000))
    issue(split, damaged, with_policy=mine)
    # THEN the second tender's 40.00 goes first, the card takes the rest
    parent = split.repository.get(damaged)
    assert parent.allocation_rule == "expression"
    assert [(leg.tender_index, leg.amount.minor_units) for leg in parent.legs] == [(0, 1_000), (1, 4_000)]


# ---------------------------------------------------------------------------- store credit


def store_credit_body(**extra: Any) -> RefundRequestBody:
    """40.00 paid by card and 20.00 with store credit (as the shop's verified request says)."""
    return split_body(tenders=[*tenders(GIFT), {"kind": "store_credit", "paid": PAID_EUR}], **extra)


def test_a_store_credit_tender_takes_back_at_most_what_the_order_paid_with_it(split: World) -> None:
    too_much = split.accept(store_credit_body(amount=6_001)).refund.refund_id
    validate_refund(too_much, recorder=split.recorder)
    with pytest.raises(PolicyViolation) as refused:
        look_up(split, too_much)
    assert refused.value.code == "exceeds_tenders"
    everything = split.accept(store_credit_body(reference="RMA-all", amount=None), "dlv-all").refund.refund_id
    validate_refund(everything, recorder=split.recorder)
    reader = Reader(split)
    look_up(split, everything, reader)
    assert split.repository.get(everything).amount == eur(6_000)
    assert reader.reads == [GIFT]  # store credit is refundflow's own: no platform is asked


def test_a_store_credit_leg_is_credited_once_at_the_refund_step_and_the_parent_completes_with_the_card(
    split: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 50.00 to refund, store credit last: 40.00 to the card, 10.00 to store credit
    refund_id = approved_parent(split, store_credit_body(amount=5_000, allocation="store_credit_last"))
    # WHEN the refund step stops after crediting (a crash before the legs' workflows started), then runs again
    real_start = split_tenders.start_legs

    def crash_once(*args: Any, **kwargs: Any) -> list[str]:
        monkeypatch.setattr(split_tenders, "start_legs", real_start)
        raise RuntimeError("crashed")

    monkeypatch.setattr(split_tenders, "start_legs", crash_once)
    with pytest.raises(RuntimeError):
        issue(split, refund_id)
    assert issue(split, refund_id).status is S.REFUND_PENDING
    # THEN the store-credit leg was credited exactly once, to the customer's key, and SUCCEEDED at once
    parent = split.repository.get(refund_id)
    card, credit = parent.legs
    assert (card.kind, card.amount.minor_units, card.status) == (TenderKind.CARD, 4_000, LegStatus.SUBMITTED)
    assert (credit.kind, credit.payment, credit.refund_id, credit.status) == (
        TenderKind.STORE_CREDIT,
        None,
        None,
        LegStatus.SUCCEEDED,
    )
    key = customer_key(parent.customer)
    assert split.store_credit.balance(key, "EUR") == eur(1_000)
    [entry] = split.store_credit.entries(key)
    assert (entry.entry_id, entry.refund_id) == (f"{refund_id}#leg1", refund_id)
    credited = [e for e in split.repository.timeline(refund_id) if e.type == STORE_CREDIT_CREDITED]
    assert [e.details["entries"][0]["entry_id"] for e in credited] == [f"{refund_id}#leg1"]
    # only the card leg is a refund of its own, started once
    assert [call[0] for call in split.starter.calls[1:]] == [card.refund_id]
    # AND when the card leg is paid the parent is refunded
    assert card.refund_id is not None
    run_leg(split, card.refund_id)
    assert poll(split, refund_id).status in {S.REFUNDED, S.COMPLETED}
    assert split.store_credit.balance(key, "EUR") == eur(1_000)


def test_the_store_credit_remedy_credits_the_failed_leg_s_amount_and_the_parent_completes(split: World) -> None:
    refund_id = failed_second_leg(split)
    parent = remedy(split, refund_id, "store_credit")
    new = parent.legs[2]
    assert (new.kind, new.payment, new.refund_id, new.replaces, new.status) == (
        TenderKind.STORE_CREDIT,
        None,
        None,
        1,
        LegStatus.SUBMITTED,
    )
    # no leg workflow: only the parent's, to wait and poll
    assert remedy_execution_name(refund_id, 2) in split.starter.executions
    assert split.store_credit.entries(customer_key(parent.customer)) == []
    # WHEN the parent's poll runs THEN the amount is credited once and every counted leg has paid
    assert poll(split, refund_id).status is S.REFUNDED
    assert split.store_credit.balance(customer_key(parent.customer), "EUR") == eur(1_200)
    assert split.repository.get(refund_id).legs[2].status is LegStatus.SUCCEEDED
    poll(split, refund_id)
    assert len(split.store_credit.entries(customer_key(parent.customer))) == 1


def test_the_acquirer_reference_schedule_never_reads_a_parent_at_a_platform(split: World) -> None:
    # GIVEN a completed split-tender parent (its legs are refunds of their own, each with its own ARN)
    from refundflow.domain.acquirer_references import SPLIT_PARENT, read_acquirer_reference, reason_without_reference

    refund_id = approved_parent(split)
    issue(split, refund_id)
    for leg in split.repository.get(refund_id).legs:
        run_leg(split, leg.refund_id or "")
    poll(split, refund_id)
    update_invoice(refund_id, recorder=split.recorder, books=split.books)
    reads = len(split.provider.calls_to("get_refund"))
    # WHEN the schedule reads it, twice
    for _ in range(2):
        read_acquirer_reference(refund_id, recorder=split.recorder, provider=split.provider)
    # THEN the platform is never asked, and why it has none is recorded once
    parent = split.repository.get(refund_id)
    assert len(split.provider.calls_to("get_refund")) == reads
    assert (parent.status, parent.acquirer_reference_unavailable) == (S.COMPLETED, SPLIT_PARENT)
    assert reason_without_reference(parent) == SPLIT_PARENT
    assert [entry.type for entry in split.repository.timeline(refund_id)].count(
        "RefundAcquirerReferenceUnavailable"
    ) == 1


def test_last_captured_first_takes_the_capture_times_the_platforms_report(env: World) -> None:
    # GIVEN a deposit captured first and a final payment a week later (the platform says when each was captured),
    # named in the request in the order deposit, final payment
    env.provider.add_payment(CARD, eur(6_000), captured_at=datetime(2026, 11, 1, 9, 0, tzinfo=UTC))
    env.provider.add_payment(GIFT, eur(4_000), captured_at=datetime(2026, 11, 8, 9, 0, tzinfo=UTC))
    refund_id = approved_parent(env, split_body(amount=5_000, allocation="last_captured_first"))
    # WHEN the refund step divides 50.00
    issue(env, refund_id)
    # THEN the final payment (captured last) takes all it has first, the deposit the rest
    legs = {leg.payment.payment_id: leg.amount.minor_units for leg in env.repository.get(refund_id).legs if leg.payment}
    assert legs == {GIFT: 4_000, CARD: 1_000}


# ---------------------------------------------------------------------------- a leg the provider reverses later


def reverse_leg(env: World, leg_refund_id: str) -> Refund:
    """The leg's provider reports its refund failed after it succeeded (the money went back to the merchant): the
    news reaches the leg's own refund, then its payment platform's function tells the parent (``after_leg``)."""
    paid = env.repository.get(leg_refund_id)
    assert paid.provider_refund_id is not None
    truth = env.provider.settle(paid.provider_refund_id, ProviderRefundStatus.FAILED)
    env.deliver(provider_event(truth))
    leg = env.repository.get(leg_refund_id)
    assert (leg.status, leg.attention_reason) == (S.NEEDS_ATTENTION, PROVIDER_REVERSED)
    split_tenders.after_leg(leg.parent_refund_id or "", leg.status, recorder=env.recorder, callbacks=env.callbacks)
    return leg


def test_a_leg_reversed_after_the_parent_completed_puts_the_parent_before_a_person_with_remedies(split: World) -> None:
    # GIVEN a split refund whose two legs paid, booked and COMPLETED
    refund_id = approved_parent(split)
    issue(split, refund_id)
    card_leg, gift_leg = split.repository.get(refund_id).legs
    for leg in (card_leg, gift_leg):
        run_leg(split, leg.refund_id or "")
    poll(split, refund_id)
    update_invoice(refund_id, recorder=split.recorder, books=split.books)
    assert split.repository.get(refund_id).status is S.COMPLETED
    counted = VelocityContribution.of(split.repository.get(refund_id))
    # WHEN the card's provider reverses its leg days later (the news repeats)
    reverse_leg(split, card_leg.refund_id or "")
    split_tenders.after_leg(refund_id, S.NEEDS_ATTENTION, recorder=split.recorder, callbacks=split.callbacks)
    # THEN the parent is not left silently COMPLETED: a person chooses a remedy for the card leg, once
    parent = split.repository.get(refund_id)
    assert (parent.status, parent.attention_reason) == (S.NEEDS_ATTENTION, f"{LEG_FAILED}:0")
    assert [(leg.status, leg.failure) for leg in parent.legs] == [
        (LegStatus.FAILED, PROVIDER_REVERSED),
        (LegStatus.SUCCEEDED, None),
    ]
    assert parent.legs[0].remedies[0].startswith("retry: send 18.00 EUR")
    moved = [entry for entry in split.repository.timeline(refund_id) if entry.to_status is S.NEEDS_ATTENTION]
    assert [(entry.from_status, entry.details["reversed_legs"]) for entry in moved] == [(S.COMPLETED, [0])]
    assert [remedy["action"] for remedy in moved[0].details["remedies"]] == ["retry", "move_to_tender", "store_credit"]
    assert split.publisher.for_refund(refund_id).count("RefundNeedsAttention") == 1
    # the parent still counts once in velocity, as a reversed refund of one payment does
    assert VelocityContribution.of(parent) == counted
    # WHEN a person retries the card leg THEN it is paid again and the parent completes on its one invoice
    parent = remedy(split, refund_id, "retry", leg=0)
    assert (parent.status, parent.legs[2].replaces, parent.legs[2].payment.payment_id) == (S.REFUND_PENDING, 0, CARD)
    assert run_leg(split, parent.legs[2].refund_id or "").status is S.COMPLETED
    assert poll(split, refund_id).status is S.REFUNDED
    asked = (len(split.books.find_calls), len(split.books.record_calls))
    update_invoice(refund_id, recorder=split.recorder, books=split.books)
    assert split.repository.get(refund_id).status is S.COMPLETED
    assert (split.balance(CARD)["refunded"], split.balance(GIFT)["refunded"]) == (1_800, 1_200)
    # (its one credit note was booked before the reversal: the books are not asked again)
    assert (len(split.books.find_calls), len(split.books.record_calls)) == asked


def test_a_leg_reversed_before_its_parent_finished_is_never_counted_as_paid(split: World) -> None:
    # GIVEN a waiting parent whose card leg paid and was counted (its gift leg not yet)
    refund_id = approved_parent(split)
    issue(split, refund_id)
    card_leg, gift_leg = split.repository.get(refund_id).legs
    paid = run_leg(split, card_leg.refund_id or "")
    split_tenders.after_leg(refund_id, paid.status, recorder=split.recorder, callbacks=split.callbacks)
    assert split.repository.get(refund_id).legs[0].status is LegStatus.SUCCEEDED
    # WHEN the card leg is reversed, then the gift leg pays
    reverse_leg(split, card_leg.refund_id or "")
    assert split.repository.get(refund_id).status is S.REFUND_PENDING
    run_leg(split, gift_leg.refund_id or "")
    # THEN the parent is not REFUNDED short: it needs a person for the reversed card leg
    result = poll(split, refund_id)
    parent = split.repository.get(refund_id)
    assert (result.status, parent.attention_reason) == (S.NEEDS_ATTENTION, f"{LEG_FAILED}:0")
    assert parent.legs[0].failure == PROVIDER_REVERSED


# ---------------------------------------------------------------------------- a leg its platform cannot carry


def test_proportional_legs_are_fitted_to_what_each_platform_can_carry(env: World) -> None:
    # GIVEN an order paid 10.000 KWD and 20.000 KWD at Stripe, which takes KWD only in steps of 0.010
    env.provider.add_payment("pi_kwd1", Money.of(10_000, "KWD"))
    env.provider.add_payment("pi_kwd2", Money.of(20_000, "KWD"))
    body = refund_request_body(
        reference="RMA-KWD",
        reason="damaged",
        amount=10_000,
        currency="KWD",
        payment=None,
        invoice_id=None,
        tenders=tenders("pi_kwd1", "pi_kwd2"),
        allocation="proportional",
    )
    # WHEN 10.000 KWD is divided in proportion (3.333 and 6.667 exactly)
    refund_id = approved_parent(env, body)
    issue(env, refund_id)
    legs = env.repository.get(refund_id).legs
    # THEN each leg is one Stripe can refund, they still add up to the amount, and each leg pays
    assert [leg.amount.minor_units for leg in legs] == [3_340, 6_660]
    assert all(run_leg(env, leg.refund_id or "").status is S.COMPLETED for leg in legs)


def huf_tender(index: int, provider: str, minor: int) -> TenderBalance:
    payment = PaymentReference.model_validate({"provider": provider, "payment_id": f"pay_{index}"})
    return TenderBalance(index, payment, TenderKind.CARD, Money.of(minor, "HUF"), Money.of(minor, "HUF"))


def test_a_share_paypal_cannot_carry_moves_its_rest_to_a_tender_that_can_or_is_refused() -> None:
    # PayPal takes HUF without decimals (100 of ISO's minor units): 333.33 HUF there is 333.00, 0.33 goes to Stripe
    stripe, paypal = huf_tender(0, "stripe", 100_000), huf_tender(1, "paypal", 50_000)
    shares = [
        LegAllocation(0, stripe.payment, TenderKind.CARD, Money.of(66_667, "HUF")),
        LegAllocation(1, paypal.payment, TenderKind.CARD, Money.of(33_333, "HUF")),
    ]
    fitted = split_tenders.fit_to_platforms(shares, [stripe, paypal])
    assert [(leg.index, leg.amount.minor_units) for leg in fitted] == [(0, 66_700), (1, 33_300)]
    # a rest no tender can take (PayPal alone, 1.50 HUF) is refused before anything is sent
    alone = huf_tender(1, "paypal", 150)
    with pytest.raises(InvalidRequest) as refused:
        split_tenders.fit_to_platforms(
            [LegAllocation(1, alone.payment, TenderKind.CARD, Money.of(150, "HUF"))], [alone]
        )
    assert refused.value.code == "amount_not_representable"


def test_a_second_refund_of_the_order_never_takes_back_store_credit_a_first_one_returned(split: World) -> None:
    # GIVEN an order paid 40.00 by card and 20.00 with store credit; 30.00 refunded proportionally (20.00 + 10.00)
    first = approved_parent(split, store_credit_body(reference="RMA-first", amount=3_000))
    issue(split, first)
    card_leg, credit_leg = split.repository.get(first).legs
    assert (card_leg.amount, credit_leg.amount, credit_leg.status) == (eur(2_000), eur(1_000), LegStatus.SUCCEEDED)
    run_leg(split, card_leg.refund_id or "")
    assert poll(split, first).status is S.REFUNDED
    # WHEN the shop asks for everything left on the same order (the same tenders, the same paid)
    again = split.accept(store_credit_body(reference="RMA-again", amount=None), "dlv-again").refund.refund_id
    validate_refund(again, recorder=split.recorder)
    look_up(split, again)
    # THEN what is left is 20.00 on the card and the 10.00 of store credit not yet returned, never 20.00 of it
    assert split.repository.get(again).amount == eur(3_000)


def test_a_tender_whose_platform_cannot_carry_the_failed_amount_is_no_remedy(
    split: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the card's platform cannot carry the failed leg's 12.00 (a currency rule of its catalog entry)
    def card_cannot(amount: Money, payment: PaymentReference) -> str | None:
        refused = payment.payment_id == CARD and amount.minor_units == 1_200
        return f"{amount} is not in the card platform's steps" if refused else None

    monkeypatch.setattr(split_tenders, "payment_problem", card_cannot, raising=False)
    monkeypatch.setattr("refundflow.domain.split_remedies.payment_problem", card_cannot, raising=False)
    refund_id = failed_second_leg(split)
    # THEN moving it to the card is not proposed, and choosing it is refused with nothing changed
    [attention] = [e for e in split.repository.timeline(refund_id) if e.to_status is S.NEEDS_ATTENTION]
    assert [remedy["action"] for remedy in attention.details["remedies"]] == ["retry", "store_credit"]
    before = split.repository.get(refund_id)
    with pytest.raises(InvalidRequest) as refused:
        remedy(split, refund_id, "move_to_tender", 0)
    assert refused.value.code == "amount_not_representable"
    assert split.repository.get(refund_id) == before


# ---------------------------------------------------------------------------- a leg's acquirer reference


def test_a_legs_late_arn_reaches_its_parent_and_the_customer_once_per_leg(split: World) -> None:
    from refundflow.domain.notifications import ARN_MEANING, Channel, notify
    from refundflow.domain.payments import ACQUIRER_REFERENCE, apply_provider_outcome
    from refundflow.domain.tickets import write_back
    from tests.unit.domain.test_customer_channel import RecordingDesk, RecordingWebhook

    # GIVEN a split refund whose legs both paid (no ARN yet: the network gives it days later)
    refund_id = approved_parent(split)
    issue(split, refund_id)
    leg_ids = [leg.refund_id or "" for leg in split.repository.get(refund_id).legs]
    for leg_id in leg_ids:
        run_leg(split, leg_id)
    poll(split, refund_id)
    update_invoice(refund_id, recorder=split.recorder, books=split.books)
    arns = ["74111111111111111111111", "74222222222222222222222"]

    def assign(index: int) -> None:
        leg = split.repository.get(leg_ids[index])
        truth = split.provider.refunds[leg.provider_refund_id or ""]
        split.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": arns[index]})
        for _ in range(2):  # the news twice (a redelivery, or two schedule runs)
            apply_provider_outcome(
                split.repository.get(leg_ids[index]),
                split.provider.refunds[truth.provider_refund_id],
                recorder=split.recorder,
            )

    def parent_events() -> list[Any]:
        return [e for e in split.publisher.events if e.refund_id == refund_id and e.detail_type == ACQUIRER_REFERENCE]

    # WHEN the first leg's ARN comes
    assign(0)
    # THEN the parent's leg carries it, and the parent (not the leg) has one RefundAcquirerReference naming the leg
    parent = split.repository.get(refund_id)
    assert [leg.acquirer_reference for leg in parent.legs] == [arns[0], None]
    (first,) = parent_events()
    assert (first.parent_refund_id, first.details["leg"], first.details["acquirer_reference"]) == (None, 0, arns[0])

    # AND the customer gets one follow-up for that leg, its amount and its ARN, however often the event comes
    def tell(event: Any, webhook: RecordingWebhook | None = None) -> None:
        notify(
            event, Channel.CUSTOMER, repository=split.repository, mailer=split.mailer, ops_email=None, webhook=webhook
        )

    tell(first)
    tell(first)
    (mail,) = split.mailer.sent
    assert mail["template"] == "refund-acquirer-reference"
    assert (mail["data"]["acquirer_reference"], mail["data"]["meaning"]) == (arns[0], ARN_MEANING)
    assert mail["data"]["amount"] == str(parent.legs[0].amount)
    assert mail["idempotency_key"] == f"{refund_id}:acquirer_reference:leg-0"
    # WHEN the second leg's ARN comes THEN its own follow-up, by webhook naming the leg
    assign(1)
    second = parent_events()[1]
    webhook = RecordingWebhook()
    tell(second, webhook)
    ((message_id, body),) = webhook.taken
    assert message_id == f"msg_{refund_id}_acquirer_reference_leg-1"
    assert (body["data"]["acquirer_reference"], body["data"]["leg"]["index"]) == (arns[1], 1)
    assert arns[1] in body["data"]["message"]
    assert str(parent.legs[1].amount) in body["data"]["message"]
    assert len(parent_events()) == 2
    # AND a desk with public replies writes one reply per leg
    desk = RecordingDesk()
    ticketed = split.repository.get(refund_id)
    for event in (first, second, first):
        event = event.model_copy(
            update={"source": event.source.model_copy(update={"platform": "zendesk", "ticket_id": "T-1"})}
        )
        write_back(event, platform="zendesk", tickets=desk, repository=split.repository, public_reply=True)
    replies = [update.marker for _, update in desk.updates if update.kind == "public_reply"]
    assert replies == [
        f"refundflow:reply:{refund_id}:acquirer_reference:leg-0",
        f"refundflow:reply:{refund_id}:acquirer_reference:leg-1",
    ]
    assert ticketed.legs[1].acquirer_reference == arns[1]


def test_a_legs_arn_that_comes_before_its_parent_counted_it_is_in_the_parents_first_message(split: World) -> None:
    from refundflow.domain.notifications import ARN_MEANING, customer_message
    from refundflow.domain.payments import ACQUIRER_REFERENCE, apply_provider_outcome

    # GIVEN a split refund whose first leg paid and got its ARN before the parent counted its legs
    refund_id = approved_parent(split)
    issue(split, refund_id)
    leg_ids = [leg.refund_id or "" for leg in split.repository.get(refund_id).legs]
    for leg_id in leg_ids:
        run_leg(split, leg_id)
    first = split.repository.get(leg_ids[0])
    truth = split.provider.refunds[first.provider_refund_id or ""]
    split.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": "74333333333333"})
    apply_provider_outcome(first, split.provider.refunds[truth.provider_refund_id], recorder=split.recorder)
    # THEN the parent sends no follow-up ahead of its first message
    assert not [e for e in split.publisher.events if e.refund_id == refund_id and e.detail_type == ACQUIRER_REFERENCE]
    # WHEN the parent counts its legs THEN the leg carries its ARN and the first message names it with its leg
    poll(split, refund_id)
    parent = split.repository.get(refund_id)
    assert parent.legs[0].acquirer_reference == "74333333333333"
    text = customer_message("issued", parent, parent.amount)
    assert f"back to your card (reference 74333333333333, {ARN_MEANING})" in text
    assert not [e for e in split.publisher.events if e.refund_id == refund_id and e.detail_type == ACQUIRER_REFERENCE]


def test_a_split_refund_is_quoted_the_widest_window_of_its_paid_legs(split: World) -> None:
    from refundflow.domain.arrival import expected_arrival, refund_arrival, refund_window
    from refundflow.models import PaymentProvider

    # GIVEN a split refund whose legs paid: a card at Stripe, the second payment (here) at PayPal
    refund_id = approved_parent(split)
    issue(split, refund_id)
    for leg in split.repository.get(refund_id).legs:
        run_leg(split, leg.refund_id or "")
    poll(split, refund_id)
    parent = split.repository.get(refund_id)
    at_paypal = parent.legs[1].payment.model_copy(update={"provider": PaymentProvider.PAYPAL})  # type: ignore[union-attr]
    parent = parent.model_copy(
        update={"legs": [parent.legs[0], parent.legs[1].model_copy(update={"payment": at_paypal})]}
    )
    moved = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    # THEN the window quoted is PayPal's (within 30 days), not the first tender's (Stripe's 5-10 business days)
    window = refund_arrival(parent, moved)
    assert window is not None
    assert window == expected_arrival("paypal", moved, method="card")
    assert window.latest_date > expected_arrival("stripe", moved).latest_date
    # AND a refund of one payment is quoted its platform's
    assert refund_window(split.repository.get(parent.legs[0].refund_id or ""), moved) == expected_arrival(
        "stripe", moved
    )
