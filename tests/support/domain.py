"""Helpers shared by the domain suites: the payment they refund, money in euros, the Catch cause of an error."""

from __future__ import annotations

import json

import pytest

from refundflow.domain.books import update_invoice
from refundflow.domain.payments import issue_refund
from refundflow.money import Money
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body

PAYMENT = "pi_3Pabc"


def eur(minor: int) -> Money:
    return Money.of(minor, "EUR")


def lambda_cause(error: Exception) -> str:
    """The Cause Step Functions hands to a Catch for a Lambda that raised ``error``."""
    return json.dumps({"errorMessage": str(error), "errorType": type(error).__name__, "stackTrace": []})


@pytest.fixture
def paid(env: World) -> World:
    """A captured payment of 100.00 EUR at the provider."""
    env.provider.add_payment(PAYMENT, eur(10_000))
    return env


def completed(env: World, reference: str = "RMA-1", amount: int | None = 4_000) -> str:
    """A refund accepted, paid and booked: COMPLETED."""
    refund_id = env.reserved(refund_request_body(reference=reference, amount=amount), f"dlv-{reference}")
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    assert env.repository.get(refund_id).status is RefundStatus.COMPLETED
    return refund_id
