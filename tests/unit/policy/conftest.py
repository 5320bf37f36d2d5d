"""Fixtures of the policy tests."""

from __future__ import annotations

import pytest

from refundflow.policy import Policy, load_default_policy
from refundflow.policy.document import SourceTrust

# The source the tests' approved_by claims come from, and what a trusting policy lets it assert.
HELPDESK = "helpdesk"


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_default_policy()


@pytest.fixture(scope="session")
def trusting_policy(default_policy: Policy) -> Policy:
    """The default policy with a help desk that may assert every role (its not_waivable_by_source still holds)."""
    return default_policy.with_sources({HELPDESK: SourceTrust(may_assert_roles=["agent", "team_lead", "finance"])})
