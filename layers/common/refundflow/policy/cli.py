"""``python -m refundflow.policy check FILE [--samples DIR] [--expect]``: validate a policy and show its decisions.

Exit codes: 0 fine, 1 the policy file is invalid (or unreadable), 2 a sample is invalid or, with
``--expect``, a decision differs from the sample's expectation.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import Field, StringConstraints, ValidationError

from refundflow.ids import derive_refund_id
from refundflow.models import (
    CustomerContact,
    CustomerRefundSummary,
    OrderInfo,
    PaymentReference,
    Refund,
    RefundLine,
    RefundReason,
    ReturnInfo,
    SourceReference,
    StrictModel,
)
from refundflow.money import Money
from refundflow.policy.document import SourceTrust
from refundflow.policy.engine import InvalidPolicy, Policy, PolicyDecision, load_policy
from refundflow.policy.inputs import Approver, PolicyInput, build_policy_input
from refundflow.status import RefundStatus

EXIT_OK, EXIT_INVALID_POLICY, EXIT_SAMPLES_FAILED = 0, 1, 2


class SampleRefund(StrictModel):
    """The fields of a refund request that a policy looks at."""

    payment: PaymentReference
    amount: Money
    reason: RefundReason
    customer: CustomerContact
    order: OrderInfo | None = None
    return_info: ReturnInfo | None = Field(default=None, alias="return")
    lines: list[RefundLine] = Field(default_factory=list)
    source_platform: str = "policy-sample"


class SampleContext(StrictModel):
    remaining: Money
    customer_history: list[CustomerRefundSummary] = Field(default_factory=list)
    refunded_today: Money
    now: datetime
    approver: Approver | None = None


class SampleExpectation(StrictModel):
    outcome: str
    rule_id: str
    final_minor_units: int | None = None


class PolicySample(StrictModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,80}$")]
    description: str = ""
    refund: SampleRefund
    context: SampleContext
    policy_sources: dict[str, SourceTrust] | None = Field(
        default=None,
        description="Decide this sample with this sources: section instead of the policy file's (to show what a "
        "source's allowance does; the rules and not_waivable_by_source stay the file's).",
    )
    expect: SampleExpectation | None = None

    def policy_for(self, policy: Policy) -> Policy:
        """The policy this sample is decided with.

        Raises:
            InvalidPolicy: ``policy_sources`` names a role the policy does not have.
        """
        return policy if self.policy_sources is None else policy.with_sources(self.policy_sources)

    def policy_input(self) -> PolicyInput:
        request, context = self.refund, self.context
        refund = Refund(
            refund_id=derive_refund_id("policy-sample", self.name),
            status=RefundStatus.VALIDATED,
            version=1,
            created_at=context.now,
            updated_at=context.now,
            payment=request.payment,
            requested_amount=request.amount,
            amount=request.amount,
            reason=request.reason,
            customer=request.customer,
            source=SourceReference(system="policy-sample", reference=self.name),
            source_platform=request.source_platform,
            order=request.order,
            return_info=request.return_info,
            lines=request.lines,
            request_fingerprint=self.name,
            correlation_id=self.name,
        )
        return build_policy_input(
            refund,
            remaining=context.remaining,
            customer_history=context.customer_history,
            refunded_today=context.refunded_today,
            now=context.now,
            approver=context.approver,
        )


def load_samples(folder: Path) -> list[PolicySample]:
    """Every ``*.json`` sample in ``folder``, by file name.

    Raises:
        ValueError: a file is not JSON or not a valid sample (the message names the file).
    """
    samples = []
    for path in sorted(folder.glob("*.json")):
        try:
            samples.append(PolicySample.model_validate(json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, ValidationError) as error:
            raise ValueError(f"{path}: {error}") from error
    return samples


def _amount(decision: PolicyDecision) -> str:
    if decision.final_amount is None:
        return f"{decision.requested_amount} -> nothing"
    return f"{decision.requested_amount} -> {decision.final_amount}"


def _mismatches(sample: PolicySample, decision: PolicyDecision) -> list[str]:
    expect = sample.expect
    if expect is None:
        return []
    found = []
    if decision.outcome != expect.outcome:
        found.append(f"outcome {decision.outcome}, expected {expect.outcome}")
    if decision.rule_id != expect.rule_id:
        found.append(f"rule {decision.rule_id}, expected {expect.rule_id}")
    if expect.final_minor_units is not None:
        actual = decision.final_amount.minor_units if decision.final_amount else None
        if actual != expect.final_minor_units:
            found.append(f"final amount {actual}, expected {expect.final_minor_units}")
    return found


def check(policy_file: Path, samples_dir: Path | None, *, expect: bool, out: TextIO, err: TextIO) -> int:
    try:
        policy = load_policy(policy_file.read_text(encoding="utf-8"), source=str(policy_file))
    except OSError as error:
        print(f"cannot read {policy_file}: {error}", file=err)
        return EXIT_INVALID_POLICY
    except InvalidPolicy as error:
        print(f"INVALID {policy_file}", file=err)
        for problem in error.problems:
            print(f"  - {problem}", file=err)
        return EXIT_INVALID_POLICY
    summary = f"version {policy.version}, {len(policy.rules)} rules + default, roles {', '.join(policy.roles)}"
    split = policy.split_tenders
    others = sorted(rule.value for rule in split.allowed_rules() - {split.default_rule})
    summary += f"; split tenders: {split.default_rule.value}" + (
        f" (a request may name {', '.join(others)})" if others else ""
    )
    print(f"OK {policy_file}: {summary}", file=out)
    if samples_dir is None:
        return EXIT_OK
    try:
        samples = load_samples(samples_dir)
    except ValueError as error:
        print(f"invalid sample: {error}", file=err)
        return EXIT_SAMPLES_FAILED
    failures = 0
    for sample in samples:
        try:
            decision = sample.policy_for(policy).decide(sample.policy_input())
        except (ValueError, ValidationError, InvalidPolicy) as error:
            print(f"invalid sample {sample.name}: {error}", file=err)
            failures += 1
            continue
        role = f" by {decision.required_role}" if decision.outcome == "require_approval" else ""
        print(f"\n{sample.name}: {decision.outcome}{role} [rule {decision.rule_id}] {_amount(decision)}", file=out)
        print(f"  {decision.explanation}", file=out)
        problems = _mismatches(sample, decision) if expect else []
        for problem in problems:
            print(f"  EXPECTATION FAILED: {problem}", file=out)
        failures += bool(problems)
    if expect:
        verdict = "all expectations met" if not failures else f"{failures} failed"
        print(f"\n{len(samples)} samples, {verdict}", file=out)
    return EXIT_SAMPLES_FAILED if failures else EXIT_OK


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refundflow.policy", description="Refund policy tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="validate a policy file and evaluate it against samples")
    check_parser.add_argument("file", type=Path, help="the policy YAML file")
    check_parser.add_argument("--samples", type=Path, help="folder of sample refunds (*.json)")
    check_parser.add_argument("--expect", action="store_true", help="fail when a decision differs from 'expect'")
    arguments: Any = parser.parse_args(argv)
    return check(
        arguments.file, arguments.samples, expect=arguments.expect, out=out or sys.stdout, err=err or sys.stderr
    )
