"""Helpers shared by the domain suites: the payment they refund, money in euros, the Catch cause of an error."""

from __future__ import annotations

import json

import pytest

from refundflow.money import Money
from tests.support.fakes import World

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
