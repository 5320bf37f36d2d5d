"""Declarative, versioned, explainable refund policy: YAML rules with CEL conditions, decided in pure code.

The EvaluatePolicy step builds a ``PolicyInput`` with ``build_policy_input`` and asks ``active_policy()``
to ``decide`` it; the approval step checks an approver with ``Policy.role_satisfies``.
"""

from refundflow.models import CustomerRefundSummary
from refundflow.policy.adjustments import AppliedAdjustment
from refundflow.policy.engine import (
    InvalidPolicy,
    Policy,
    PolicyDecision,
    RuleTrace,
    SourceApprovalCheck,
    load_default_policy,
    load_policy,
)
from refundflow.policy.inputs import Approver, PolicyInput, build_policy_input
from refundflow.policy.source import ActivePolicy, PolicySelection, PolicySourceSettings, active_policy

__all__ = [
    "ActivePolicy",
    "AppliedAdjustment",
    "Approver",
    "CustomerRefundSummary",
    "InvalidPolicy",
    "Policy",
    "PolicyDecision",
    "PolicyInput",
    "PolicySelection",
    "PolicySourceSettings",
    "RuleTrace",
    "SourceApprovalCheck",
    "active_policy",
    "build_policy_input",
    "load_default_policy",
    "load_policy",
]
