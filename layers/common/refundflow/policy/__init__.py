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
from refundflow.policy.split_tenders import (
    AllocationExpressionFailed,
    AllocationRuleNotAllowed,
    SplitTenderPolicy,
    allocate_legs,
    allowed_rules,
)

__all__ = [
    "ActivePolicy",
    "AllocationExpressionFailed",
    "AllocationRuleNotAllowed",
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
    "SplitTenderPolicy",
    "active_policy",
    "allocate_legs",
    "allowed_rules",
    "build_policy_input",
    "load_default_policy",
    "load_policy",
]
