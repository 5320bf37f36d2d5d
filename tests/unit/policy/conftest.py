"""Fixtures of the policy tests."""

from __future__ import annotations

import pytest

from refundflow.policy import Policy, load_default_policy


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_default_policy()
