"""``python -m refundflow.policy check FILE [--samples DIR] [--expect]``: validate a policy and show its decisions;
``python -m refundflow.policy split FILE --amount EUR:7000 --tender kind=card,captured=6000 ...``: how it divides
a refund among an order's tenders.

Exit codes: 0 fine, 1 the policy file is invalid (or unreadable), 2 a sample is invalid or, with
``--expect``, a decision differs from the sample's expectation (``split``: the amount is not divided).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import Field, StringConstraints, ValidationError

from refundflow.domain.allocation import TenderBalance
from refundflow.errors import RefundflowError
from refundflow.ids import derive_refund_id
from refundflow.models import (
    CustomerContact,
    CustomerRefundSummary,
    OrderInfo,
    PaymentProvider,
    PaymentReference,
    Refund,
    RefundLine,
    RefundReason,
    ReturnInfo,
    SourceReference,
    StrictModel,
    TenderKind,
)
from refundflow.money import Money
from refundflow.policy.document import SourceTrust
from refundflow.policy.engine import InvalidPolicy, Policy, PolicyDecision, load_policy
from refundflow.policy.inputs import Approver, PolicyInput, build_policy_input
from refundflow.policy.split_tenders import allocate_legs
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


_TENDER_FIELDS = ("kind", "captured", "remaining", "captured_at", "provider")


def parse_tender(index: int, text: str, currency: str) -> TenderBalance:
    """``kind=card,captured=6000[,remaining=6000][,captured_at=2026-03-01T10:00:00Z][,provider=stripe]``.

    Raises:
        ValueError: an unknown field, kind or provider, a missing field, an amount that is not an integer.
    """
    fields: dict[str, str] = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        if not equals or name.strip() not in _TENDER_FIELDS:
            raise ValueError(f"tender {index}: '{part}' is not one of {', '.join(f + '=' for f in _TENDER_FIELDS)}")
        fields[name.strip()] = value.strip()
    if "kind" not in fields or "captured" not in fields:
        raise ValueError(f"tender {index}: kind= and captured= are required")
    captured = int(fields["captured"])
    when = fields.get("captured_at")
    moment = datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return TenderBalance(
        index=index,
        payment=PaymentReference(
            provider=PaymentProvider(fields.get("provider", "stripe")), payment_id=f"tender_{index}"
        ),
        kind=TenderKind(fields["kind"]),
        captured=Money.of(captured, currency),
        remaining=Money.of(int(fields.get("remaining", captured)), currency),
        captured_at=moment,
    )


def split(
    policy_file: Path,
    amount: str,
    tenders: Sequence[str],
    *,
    rule: str | None,
    reason: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Divide an amount among tenders the way the policy file says, and print the legs (to try a split_tenders
    section, its expression above all, before shipping it)."""
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
    try:
        currency, _, minor_units = amount.partition(":")
        money = Money.of(int(minor_units), currency)
        balances = [parse_tender(index, text, currency) for index, text in enumerate(tenders)]
        legs = allocate_legs(policy, money, balances, rule, reason=reason)
    except (ValueError, ValidationError, RefundflowError) as error:
        print(f"not divided: {error}", file=err)
        return EXIT_SAMPLES_FAILED
    used = policy.split_tenders.rule_for(rule).value
    print(f"{money} by {used}:", file=out)
    for leg in legs:
        where = leg.payment.provider.value if leg.payment is not None else "refundflow's ledger"
        print(f"  tender {leg.index} ({leg.kind.value}, {where}): {leg.amount}", file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refundflow.policy", description="Refund policy tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="validate a policy file and evaluate it against samples")
    check_parser.add_argument("file", type=Path, help="the policy YAML file")
    check_parser.add_argument("--samples", type=Path, help="folder of sample refunds (*.json)")
    check_parser.add_argument("--expect", action="store_true", help="fail when a decision differs from 'expect'")
    split_parser = commands.add_parser("split", help="divide an amount among tenders by the policy's split_tenders")
    split_parser.add_argument("file", type=Path, help="the policy YAML file")
    split_parser.add_argument("--amount", required=True, help="CURRENCY:MINOR_UNITS, e.g. EUR:7000")
    split_parser.add_argument(
        "--tender",
        action="append",
        required=True,
        help="kind=card,captured=6000[,remaining=..][,captured_at=2026-03-01T10:00:00Z][,provider=stripe]; repeat",
    )
    split_parser.add_argument("--rule", help="the rule a request names (default: the policy's rule)")
    split_parser.add_argument("--reason", help="the refund's reason (refund.reason in the expression)")
    arguments: Any = parser.parse_args(argv)
    if arguments.command == "split":
        return split(
            arguments.file,
            arguments.amount,
            arguments.tender,
            rule=arguments.rule,
            reason=arguments.reason,
            out=out or sys.stdout,
            err=err or sys.stderr,
        )
    return check(
        arguments.file, arguments.samples, expect=arguments.expect, out=out or sys.stdout, err=err or sys.stderr
    )
