"""Parking a workflow on a task token and resuming it exactly once, whichever side comes first;
notifications sent once per event and channel."""

from __future__ import annotations

import threading

import pytest

from refundflow.domain.notifications import Channel, notify
from refundflow.domain.payments import issue_refund
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import WaitFor, register_wait, resume_waiting
from refundflow.errors import TransientError
from refundflow.events import RefundEvent
from refundflow.models import Refund
from refundflow.money import Money
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body, world

S = RefundStatus
OPS = "ops@shop.example"


def awaiting_approval(env: World, reference: str = "RMA-1001") -> Refund:
    refund_id = env.accept(refund_request_body(reference=reference), f"dlv-{reference}").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    return env.recorder.move(env.repository.get(refund_id), S.PENDING_APPROVAL, actor="tests:policy")


def approve(env: World, refund: Refund) -> Refund:
    return env.recorder.move(env.repository.get(refund.refund_id), S.APPROVED, actor="approver:alice")


# ---------------------------------------------------------------- register_wait / resume_waiting


def test_a_wait_registered_before_the_answer_is_resumed_by_the_answer(env: World) -> None:
    # GIVEN a workflow that parks on its token while the approval is outstanding
    refund = awaiting_approval(env)
    assert not register_wait(
        refund.refund_id, WaitFor.APPROVAL, "token-1", repository=env.repository, callbacks=env.callbacks
    )
    assert env.callbacks.succeeded == []
    # WHEN the approval comes and resumes the waiting workflow, and the resume is repeated
    approved = approve(env, refund)
    first = resume_waiting(approved, WaitFor.APPROVAL, repository=env.repository, callbacks=env.callbacks)
    again = resume_waiting(approved, WaitFor.APPROVAL, repository=env.repository, callbacks=env.callbacks)
    # THEN the workflow is resumed once, with the new status
    assert (first, again) == (True, False)
    assert [(token, output["status"]) for token, output in env.callbacks.succeeded] == [("token-1", "APPROVED")]


def test_a_wait_registered_after_the_answer_is_resumed_at_once(env: World) -> None:
    # GIVEN an approval that came in before the workflow parked (its resume found no token)
    refund = awaiting_approval(env)
    approved = approve(env, refund)
    assert not resume_waiting(approved, WaitFor.APPROVAL, repository=env.repository, callbacks=env.callbacks)
    # WHEN the workflow parks
    resumed = register_wait(
        refund.refund_id, WaitFor.APPROVAL, "token-1", repository=env.repository, callbacks=env.callbacks
    )
    # THEN it is resumed at once, exactly once, and no token is left behind
    assert resumed
    assert [token for token, _ in env.callbacks.succeeded] == ["token-1"]
    assert env.repository.peek_wait_token(refund.refund_id, WaitFor.APPROVAL.value) is None


@pytest.mark.parametrize("trial", range(3))
def test_a_wait_and_its_answer_racing_resume_the_workflow_exactly_once(trial: int) -> None:
    with world(serialized=True) as env:
        # GIVEN eight refunds awaiting approval, and for each a workflow parking while its approval arrives
        refunds = [awaiting_approval(env, f"RMA-{trial}-{index}") for index in range(8)]
        barrier = threading.Barrier(2 * len(refunds))
        errors: list[Exception] = []

        def park(refund: Refund) -> None:
            barrier.wait()
            try:
                register_wait(
                    refund.refund_id,
                    WaitFor.APPROVAL,
                    f"token-{refund.refund_id}",
                    repository=env.repository,
                    callbacks=env.callbacks,
                )
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

        def answer(refund: Refund) -> None:
            barrier.wait()
            try:
                approved = approve(env, refund)
                resume_waiting(approved, WaitFor.APPROVAL, repository=env.repository, callbacks=env.callbacks)
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

        # WHEN both sides run at the same time
        threads = [threading.Thread(target=side, args=(refund,)) for refund in refunds for side in (park, answer)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        # THEN every workflow was resumed exactly once, whichever side came second
        assert errors == []
        assert sorted(token for token, _ in env.callbacks.succeeded) == sorted(f"token-{r.refund_id}" for r in refunds)
        assert len(env.callbacks.attempts) == len(refunds)


def test_a_resume_that_could_not_reach_step_functions_is_retried_later(env: World) -> None:
    # GIVEN a parked workflow, and Step Functions throttling the first resume
    refund = awaiting_approval(env)
    register_wait(refund.refund_id, WaitFor.APPROVAL, "token-1", repository=env.repository, callbacks=env.callbacks)
    env.callbacks.transient_failures = 1
    approved = approve(env, refund)
    with pytest.raises(TransientError):
        resume_waiting(approved, WaitFor.APPROVAL, repository=env.repository, callbacks=env.callbacks)
    # WHEN the resume is retried THEN the token was kept and the workflow is resumed once
    assert resume_waiting(approved, WaitFor.APPROVAL, repository=env.repository, callbacks=env.callbacks)
    assert [token for token, _ in env.callbacks.succeeded] == ["token-1"]


def test_a_workflow_still_waiting_is_not_resumed(env: World) -> None:
    # GIVEN a parked workflow whose approval is still outstanding
    refund = awaiting_approval(env)
    register_wait(refund.refund_id, WaitFor.APPROVAL, "token-1", repository=env.repository, callbacks=env.callbacks)
    # WHEN something tries to resume it THEN it keeps waiting, with its token
    assert not resume_waiting(refund, WaitFor.APPROVAL, repository=env.repository, callbacks=env.callbacks)
    assert env.callbacks.attempts == []
    assert env.repository.peek_wait_token(refund.refund_id, WaitFor.APPROVAL.value) == "token-1"


# ---------------------------------------------------------------- notifications


def event_of(env: World, refund_id: str, detail_type: str) -> RefundEvent:
    return next(
        event for event in env.publisher.events if event.refund_id == refund_id and event.detail_type == detail_type
    )


@pytest.fixture
def issued(env: World) -> tuple[World, RefundEvent]:
    """A refund of 25.00 EUR issued to Jane, with its RefundIssued event."""
    env.provider.add_payment("pi_3Pabc", Money.of(10_000, "EUR"))
    refund_id = env.reserved(refund_request_body(email="jane.doe@example.com"))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return env, event_of(env, refund_id, "RefundIssued")


def test_the_customer_is_told_once_per_event(issued: tuple[World, RefundEvent]) -> None:
    env, event = issued
    # WHEN the RefundIssued event is delivered to the customer channel twice (SQS is at-least-once)
    first = notify(event, Channel.CUSTOMER, repository=env.repository, mailer=env.mailer, ops_email=OPS)
    second = notify(event, Channel.CUSTOMER, repository=env.repository, mailer=env.mailer, ops_email=OPS)
    # THEN one e-mail went to the address on the refund, with the amount and the order reference
    assert first is not None
    assert second is None
    (mail,) = env.mailer.sent
    assert (mail["to"], mail["template"]) == ("jane.doe@example.com", "refund-issued")
    assert (mail["data"]["amount"], mail["data"]["reference"]) == ("25.00 EUR", "ORD-RMA-1001")
    assert mail["idempotency_key"] == f"{event.refund_id}:issued"


def test_each_channel_is_told_once(issued: tuple[World, RefundEvent]) -> None:
    env, event = issued
    # WHEN the same event reaches the customer and the ops channels, each twice
    for channel in (Channel.CUSTOMER, Channel.OPS, Channel.CUSTOMER, Channel.OPS):
        notify(event, channel, repository=env.repository, mailer=env.mailer, ops_email=OPS)
    # THEN each channel sent exactly one message
    assert sorted((mail["to"], mail["template"]) for mail in env.mailer.sent) == [
        ("jane.doe@example.com", "refund-issued"),
        (OPS, "ops-alert"),
    ]


def test_events_a_channel_ignores_send_nothing(issued: tuple[World, RefundEvent]) -> None:
    env, issued_event = issued
    approved = event_of(env, issued_event.refund_id, "RefundApproved")
    # WHEN the customer channel gets an approval event, and ops has no address configured
    customer = notify(approved, Channel.CUSTOMER, repository=env.repository, mailer=env.mailer, ops_email=OPS)
    ops = notify(issued_event, Channel.OPS, repository=env.repository, mailer=env.mailer, ops_email=None)
    # THEN nothing is sent
    assert (customer, ops) == (None, None)
    assert env.mailer.sent == []


def test_a_failed_send_is_sent_when_the_queue_retries(issued: tuple[World, RefundEvent]) -> None:
    env, event = issued
    # GIVEN a mail service that refuses the first attempt
    env.mailer.failures = 1
    with pytest.raises(TransientError):
        notify(event, Channel.CUSTOMER, repository=env.repository, mailer=env.mailer, ops_email=OPS)
    # WHEN the queue redelivers THEN the message is sent, once
    assert notify(event, Channel.CUSTOMER, repository=env.repository, mailer=env.mailer, ops_email=OPS) is not None
    assert len(env.mailer.sent) == 1
