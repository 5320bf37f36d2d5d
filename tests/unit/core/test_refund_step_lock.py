"""The payment platforms' refund step holds Powertools' idempotency lock only where the platform takes no
idempotency key: elsewhere the conditional REFUND_SUBMITTED write and the refund's one key make it idempotent, and
the lock's record would cost two writes per refund."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from local.cfn import ROOT
from refundflow import catalog


def payment_function(platform: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("PLATFORM", platform)
    spec = importlib.util.spec_from_file_location(f"payment_app_{platform}", ROOT / "functions/payment_platform/app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("platform", [entry.name for entry in catalog.payment_platforms()])
def test_the_refund_is_locked_exactly_where_the_platform_takes_no_key(
    platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = payment_function(platform, monkeypatch)
    keyless = catalog.payment_capabilities(platform).idempotency.carrier == "none"
    assert function.needs_lock("refund") is keyless
    assert function.needs_lock("look_up_payment") is False
    assert function.needs_lock("poll_refund") is False


def test_stripe_refunds_without_the_lock_and_braintree_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert payment_function("stripe", monkeypatch).needs_lock("refund") is False
    assert payment_function("braintree", monkeypatch).needs_lock("refund") is True
