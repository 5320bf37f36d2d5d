"""The merchant's split-tender configuration (the policy document's ``split_tenders`` section), compiled once.

A refund of an order paid with several tenders is divided among them by an allocation rule
(``refundflow.domain.allocation``). The section says which rule applies when the request names none, which
other rules a request may name, what refunding to each kind of tender costs (``least_fee_first``) and, for the
``expression`` rule, the merchant's CEL expression giving each tender a priority (lower first)::

    split_tenders:
      rule: last_captured_first
      allowed_request_rules: [proportional, store_credit_last]
      expression: "tender.kind == 'gift_card' ? 1 : 0"      # only with rule (or an allowed rule) expression
      fee_basis_points: {card: 290, wallet: 340}
      fee_basis_points_by_provider: {paypal: {wallet: 349}}

The expression sees ``tender`` (``index``, ``kind``, ``provider``: "" for store credit, ``captured``,
``remaining`` in minor units, ``captured_at`` in Unix seconds, absent when unknown: guard it with
``has(tender.captured_at)``, ``fee_basis_points``), ``refund`` (``amount``, ``currency``, ``reason``: "" when
the caller gave none) and the policy's ``params``. It must yield an int; it is checked when the policy loads
(compiles, names only those inputs, yields an int on synthetic tenders of every kind, every currency, every
reason) and again on every tender it orders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from refundflow.domain.allocation import (
    AllocationImpossible,
    AllocationRule,
    LegAllocation,
    TenderBalance,
    allocate,
)
from refundflow.errors import InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference, RefundReason, TenderKind
from refundflow.money import Money
from refundflow.policy import cel_runtime
from refundflow.policy.document import PolicyDocument, SplitTenders
from refundflow.policy.references import SCALAR, Shape, check_references, identifiers, shape_of_value

if TYPE_CHECKING:
    from refundflow.policy.engine import Policy
    from refundflow.policy.source import ActivePolicy

_TENDER_SHAPE = Shape(
    "struct",
    dict.fromkeys(("index", "kind", "provider", "captured", "remaining", "captured_at", "fee_basis_points"), SCALAR),
)
_REFUND_SHAPE = Shape("struct", dict.fromkeys(("amount", "currency", "reason"), SCALAR))
_CEL_INT_RANGE = range(-(2**63), 2**63)
# Small, ordinary and huge refunds: an expression's branches on the amount are all taken.
_SYNTHETIC_AMOUNTS = (1, 2_500, 10**12)


class AllocationRuleNotAllowed(InvalidRequest):
    """The refund request names an allocation rule the merchant's policy does not allow (or no such rule)."""

    code = "allocation_rule_not_allowed"


class AllocationExpressionFailed(AllocationImpossible):
    """The merchant's expression failed on a tender or did not yield an int: the amount is not divided."""

    code = "allocation_expression_failed"


@dataclass(frozen=True)
class SplitTenderPolicy:
    """The ``split_tenders`` section, checked and with its expression compiled. Build it with
    ``compile_split_tenders``; the loaded ``Policy`` carries it as ``policy.split_tenders``."""

    settings: SplitTenders
    params: dict[str, object] = dataclasses.field(repr=False)
    program: Any | None = dataclasses.field(default=None, repr=False)

    @property
    def default_rule(self) -> AllocationRule:
        return AllocationRule(self.settings.rule)

    def allowed_rules(self) -> frozenset[AllocationRule]:
        """The rules a refund request may name: the default rule and ``allowed_request_rules``."""
        return frozenset(AllocationRule(rule) for rule in (self.settings.rule, *self.settings.allowed_request_rules))

    def rule_for(self, requested_rule: str | None) -> AllocationRule:
        """The rule a refund is divided by: the requested one when the policy allows it, else the default.

        Raises:
            AllocationRuleNotAllowed: ``requested_rule`` is not a rule, or not one the policy allows.
        """
        if requested_rule is None:
            return self.default_rule
        allowed = self.allowed_rules()
        names = ", ".join(sorted(rule.value for rule in allowed))
        try:
            rule = AllocationRule(requested_rule)
        except ValueError:
            raise AllocationRuleNotAllowed(
                f"'{requested_rule}' is not an allocation rule; this policy allows: {names}"
            ) from None
        if rule not in allowed:
            raise AllocationRuleNotAllowed(
                f"the policy does not allow the allocation rule '{rule}'; it allows: {names}"
            )
        return rule

    def fee_basis_points(self, kind: TenderKind, provider: PaymentProvider | None) -> int | None:
        """What refunding to such a tender costs the merchant, per provider and kind first, then per kind; None
        when the policy says nothing about it (``provider`` None: store credit, refundflow's own ledger)."""
        by_provider = self.settings.fee_basis_points_by_provider.get(provider.value, {}) if provider else {}
        if kind.value in by_provider:
            return by_provider[kind.value]
        return self.settings.fee_basis_points.get(kind.value)

    def allocate(
        self,
        amount: Money,
        tenders: Sequence[TenderBalance],
        requested_rule: str | None,
        *,
        reason: RefundReason | str | None = None,
    ) -> list[LegAllocation]:
        """The legs ``amount`` is refunded in (ordered by tender index, adding up to ``amount`` exactly).

        A tender's ``fee_basis_points`` is the policy's figure for its provider and kind when the policy has one,
        else the tender's own.

        Raises:
            AllocationRuleNotAllowed: the requested rule is unknown or not allowed by the policy.
            AllocationImpossible: more than the tenders have left, another currency, a repeated index…
            AllocationExpressionFailed: the expression failed on a tender or yielded something other than an int.
        """
        rule = self.rule_for(requested_rule)
        priced = [self._priced(tender) for tender in tenders]
        priority = None
        if rule is AllocationRule.EXPRESSION:
            priority = self._priority(amount, reason)
        return allocate(amount, priced, rule, priority=priority)

    def _priced(self, tender: TenderBalance) -> TenderBalance:
        fee = self.fee_basis_points(tender.kind, tender.payment.provider if tender.payment else None)
        return tender if fee is None else dataclasses.replace(tender, fee_basis_points=fee)

    def _priority(self, amount: Money, reason: RefundReason | str | None) -> Any:
        program = self.program
        if program is None:  # the document's validator makes this unreachable for a loaded policy
            raise AllocationExpressionFailed("the expression rule needs the merchant's expression")
        refund = refund_variables(amount, reason)

        def priority(tender: TenderBalance) -> int:
            return evaluate_priority(program, tender, refund, self.params)

        return priority


def refund_variables(amount: Money, reason: RefundReason | str | None) -> dict[str, Any]:
    """The expression's ``refund``: amount in minor units, currency and reason ("" when the caller gave none)."""
    return {"amount": amount.minor_units, "currency": amount.currency, "reason": "" if reason is None else str(reason)}


def tender_variables(tender: TenderBalance) -> dict[str, Any]:
    """The expression's ``tender``: integers and strings, ``captured_at`` in Unix seconds, absent when unknown."""
    facts: dict[str, Any] = {
        "index": tender.index,
        "kind": tender.kind.value,
        "provider": tender.payment.provider.value if tender.payment else "",
        "captured": tender.captured.minor_units,
        "remaining": tender.remaining.minor_units,
        "fee_basis_points": tender.fee_basis_points,
    }
    if tender.captured_at is not None:
        facts["captured_at"] = int(tender.captured_at.timestamp())
    return facts


def evaluate_priority(program: Any, tender: TenderBalance, refund: dict[str, Any], params: dict[str, object]) -> int:
    """The priority the compiled expression gives ``tender``.

    Raises:
        AllocationExpressionFailed: the expression failed, or yielded something other than a 64-bit int.
    """
    provider = tender.payment.provider if tender.payment else "refundflow's ledger"
    where = f"the split_tenders expression on tender {tender.index} ({tender.kind}, {provider})"
    try:
        activation = cel_runtime.context({"tender": tender_variables(tender), "refund": refund, "params": params})
        result = cel_runtime.evaluate(program, activation)
    except cel_runtime.CelEvaluationError as error:
        raise AllocationExpressionFailed(f"{where} failed: {error}") from error
    # bool is an int in Python, not in CEL: a condition where a priority belongs is a mistake worth naming.
    if type(result) is not int or result not in _CEL_INT_RANGE:
        raise AllocationExpressionFailed(f"{where} yielded {type(result).__name__} {result!r}, not an int priority")
    return result


def _synthetic_tenders(currency: str) -> list[TenderBalance]:
    """One tender of every kind (each provider in turn), with and without a capture time, empty and full."""
    captured_at = datetime(2025, 1, 10, 9, 30, tzinfo=UTC)
    providers = list(PaymentProvider)
    tenders = []
    for index, kind in enumerate(TenderKind):
        remaining = 0 if index % 3 == 2 else 5_000
        tenders.append(
            TenderBalance(
                index=index,
                payment=None
                if kind is TenderKind.STORE_CREDIT
                else PaymentReference(provider=providers[index % len(providers)], payment_id=f"synthetic_{index}"),
                kind=kind,
                captured=Money.of(10_000, currency),
                remaining=Money.of(remaining, currency),
                captured_at=captured_at if index % 2 == 0 else None,
                fee_basis_points=index * 50,
            )
        )
    return tenders


def compile_split_tenders(document: PolicyDocument) -> tuple[SplitTenderPolicy, list[str]]:
    """The compiled section and the problems found (empty when it may divide refunds): the expression must
    compile, name only ``tender``, ``refund`` and ``params`` and their fields, and yield an int on synthetic
    tenders of every kind in every currency of the policy, for every reason and without one."""
    settings = document.split_tenders
    text = settings.expression
    if text is None:
        return SplitTenderPolicy(settings=settings, params=document.params), []
    where = "split_tenders.expression"
    try:
        program = cel_runtime.compile_expression(text)
    except cel_runtime.CelCompileError as error:
        return SplitTenderPolicy(settings=settings, params=document.params), [f"{where}: not valid CEL: {error}"]
    roots = {"tender": _TENDER_SHAPE, "refund": _REFUND_SHAPE, "params": shape_of_value(document.params)}
    problems = [f"{where}: {problem}" for problem in check_references(text, roots)]
    # Converting params to CEL values costs ~50 µs per tender: passed only to an expression that names them.
    params = document.params if "params" in identifiers(text) else {}
    if not problems:
        problems = _synthetic_problems(program, document.currencies, params, where)
    return SplitTenderPolicy(settings=settings, params=params, program=program), problems


def _synthetic_problems(program: Any, currencies: Sequence[str], params: dict[str, object], where: str) -> list[str]:
    reasons: list[str | None] = [*(reason.value for reason in RefundReason), None]
    # Every reason on an ordinary amount, every amount on one reason: what a branch on either needs, at a
    # fraction of the cross product's cost (the policy loads on cold starts).
    cases = [(2_500, reason) for reason in reasons] + [(amount, reasons[0]) for amount in _SYNTHETIC_AMOUNTS]
    for currency in currencies:
        tenders = _synthetic_tenders(currency)
        for amount, reason in cases:
            refund = refund_variables(Money.of(amount, currency), reason)
            for tender in tenders:
                try:
                    evaluate_priority(program, tender, refund, params)
                except AllocationExpressionFailed as error:
                    label = f"{currency} {amount} refund, reason {reason or 'none'}"
                    return [f"{where}: must yield an int priority for every tender; on a synthetic {label}: {error}"]
    return []


def _loaded(policy: Policy | ActivePolicy) -> Policy:
    """The policy in force: ``policy`` itself, or the one an ``ActivePolicy`` selects now (its SSM override, the
    last good version, or the packaged default)."""
    from refundflow.policy.source import ActivePolicy

    return policy.select().policy if isinstance(policy, ActivePolicy) else policy


def allowed_rules(policy: Policy | ActivePolicy) -> frozenset[AllocationRule]:
    """The allocation rules a refund request may name under ``policy`` (a loaded ``Policy`` or the process's
    ``active_policy()``): cheap, for the intake to refuse another one with 400 before anything is stored."""
    return _loaded(policy).split_tenders.allowed_rules()


def allocate_legs(
    policy: Policy | ActivePolicy,
    amount: Money,
    tenders: Sequence[TenderBalance],
    requested_rule: str | None = None,
    *,
    reason: RefundReason | str | None = None,
) -> list[LegAllocation]:
    """Divide ``amount`` among ``tenders`` the way ``policy`` (a loaded ``Policy`` or ``active_policy()``) says:
    the requested rule when the policy allows it, else its default rule; fees from the policy; its expression for
    the expression rule (which sees ``refund.reason`` = ``reason``).

    Raises:
        AllocationRuleNotAllowed: the requested rule is unknown or not allowed (the intake answers 400).
        AllocationImpossible: more than the tenders have left, another currency, a repeated tender index.
        AllocationExpressionFailed: the merchant's expression failed on a tender or did not yield an int.
    """
    return _loaded(policy).split_tenders.allocate(amount, tenders, requested_rule, reason=reason)
