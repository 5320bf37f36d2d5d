"""The policy engine: load and check a policy document, then decide refunds with it. Pure, no I/O."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from refundflow.errors import ConfigurationError
from refundflow.models import PolicyDecisionRecord, StrictModel
from refundflow.money import Money
from refundflow.policy import cel_runtime
from refundflow.policy.adjustments import AppliedAdjustment, apply_adjustments
from refundflow.policy.document import (
    AdjustmentSpec,
    OutcomeSpec,
    PartialRefundCap,
    PolicyDocument,
    RestockingFee,
    ShippingDeduction,
    SourceTrust,
)
from refundflow.policy.inputs import ApproverFacts, PolicyInput
from refundflow.policy.references import Shape, check_references, shape_of_model, shape_of_value
from refundflow.policy.split_tenders import SplitTenderPolicy, compile_split_tenders
from refundflow.policy.synthetic import synthetic_inputs

DEFAULT_RULE_ID = "default"
CURRENCY_RULE_ID = "currency_not_in_policy"
INPUTS_RULE_ID = "policy_inputs"
EVALUATION_ERROR = "policy_evaluation_error"
NOTHING_TO_REFUND = "nothing_to_refund_after_adjustments"
APPROVED_AT_SOURCE = "approved_at_source"
SOURCE_APPROVAL_NOT_HONOURED = "source_approval_not_honoured"
PACKAGED_SOURCE = "packaged:default_policy.yaml"
_EXPLANATION_LIMIT = 2000
_MAX_DOCUMENT_CHARS = 256 * 1024


class InvalidPolicy(ConfigurationError):
    """A policy document that must not decide anything; ``problems`` says what is wrong, rule by rule."""

    code = "invalid_policy"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"policy {source} is invalid: " + "; ".join(self.problems))


class _EvaluationError(Exception):
    """A rule or adjustment could not be evaluated for this input (never leaves the engine)."""

    def __init__(self, rule_id: str, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.rule_id = rule_id
        self.where = where
        self.message = message


class RuleTrace(StrictModel):
    rule_id: str
    matched: bool


class SourceApprovalCheck(StrictModel):
    """What became of an ``approved_by`` claim: honoured (it stands for the human approval) or not, and why.

    ``verdict`` is one of: ``honoured``; ``source_may_not_assert_role`` (the policy's ``sources:`` does not
    let that source assert that role); ``rule_not_waivable`` (the deciding rule is in
    ``not_waivable_by_source``); ``non_waivable_rule_applies`` (a later non-waivable rule matches too);
    ``role_too_low`` (the role does not satisfy the rule's); ``no_approval_needed`` (approve or reject).
    """

    approver_id: str
    role: str
    source: str
    honoured: bool
    verdict: str
    detail: str
    non_waivable_rules: list[str] = Field(default_factory=list)


class PolicyDecision(StrictModel):
    """What the policy decided for one refund, why, and on which facts."""

    outcome: Literal["approve", "require_approval", "reject", "wait_for_return"]
    rule_id: str
    policy_version: str
    policy_digest: str = Field(description="SHA-256 of the policy text that decided.")
    policy_source: str
    required_role: str | None = None
    reason_code: str | None = None
    requested_amount: Money
    final_amount: Money | None = Field(description="What to refund after adjustments; None when rejected.")
    adjustments: list[AppliedAdjustment] = Field(default_factory=list)
    explanation: str
    evaluated_rules: list[RuleTrace] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list, description="policy_fallback, policy_evaluation_error, …")
    inputs: dict[str, Any] = Field(description="The PolicyInput the decision was made on, JSON-safe.")
    source_approval: SourceApprovalCheck | None = Field(
        default=None, description="The approved_by claim the refund carried, and whether it was honoured."
    )

    def to_record(self) -> PolicyDecisionRecord:
        explanation = self.explanation
        if len(explanation) > _EXPLANATION_LIMIT:
            explanation = explanation[: _EXPLANATION_LIMIT - 1] + "…"
        return PolicyDecisionRecord(
            outcome=self.outcome,
            policy_version=self.policy_version,
            rule_id=self.rule_id,
            reason_code=self.reason_code,
            required_role=self.required_role,
            adjustments=[adjustment.to_adjustment() for adjustment in self.adjustments],
            explanation=explanation,
        )

    def flagged(self, flag: str, note: str) -> PolicyDecision:
        """A copy marked with ``flag`` whose explanation starts with ``note``."""
        return self.model_copy(update={"flags": [*self.flags, flag], "explanation": f"{note} {self.explanation}"})


@dataclass(frozen=True)
class _Condition:
    text: str
    program: Any


@dataclass(frozen=True)
class _Adjustment:
    name: str | None
    spec: AdjustmentSpec
    condition: _Condition | None


@dataclass(frozen=True)
class _Rule:
    id: str
    spec: OutcomeSpec
    condition: _Condition | None
    adjustments: tuple[_Adjustment, ...]


@dataclass(frozen=True)
class Policy:
    """A loaded, checked and compiled policy. Build it with ``load_policy``; it never changes."""

    document: PolicyDocument
    source: str
    digest: str
    rules: tuple[_Rule, ...]
    default: _Rule
    split_tenders: SplitTenderPolicy

    @property
    def version(self) -> str:
        return self.document.version

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.document.roles)

    @property
    def highest_role(self) -> str:
        return self.document.roles[-1]

    @property
    def lowest_role(self) -> str:
        return self.document.roles[0]

    def source_may_assert(self, source: str | None, role: str | None) -> bool:
        """True when ``sources:`` lets ``source`` assert ``role``; a source not listed may assert nothing."""
        trust = self.document.sources.get(source or "")
        return trust is not None and role in trust.may_assert_roles

    def with_sources(self, sources: Mapping[str, SourceTrust]) -> Policy:
        """This policy with another ``sources:`` section (to try allowances with ``policy check`` samples).

        Raises:
            InvalidPolicy: a source names a role the policy does not have.
        """
        document = self.document.model_copy(update={"sources": dict(sources)})
        problems = _source_problems(document)
        if problems:
            raise InvalidPolicy(self.source, problems)
        return dataclasses.replace(self, document=document, source=f"{self.source} (sources replaced)")

    def role_satisfies(self, role: str | None, required_role: str | None) -> bool:
        """True when ``role`` is ``required_role`` or above it; an unknown role satisfies nothing."""
        roles = self.document.roles
        if role not in roles or required_role not in roles:
            return False
        return roles.index(role) >= roles.index(required_role)

    def decide(self, facts: PolicyInput) -> PolicyDecision:
        """The first rule whose ``when`` is true decides, else the default. Never raises for a rule that
        fails at runtime: that refund goes to the highest role with reason ``policy_evaluation_error``.
        """
        requested = facts.amount
        if facts.currency not in self.document.currencies:
            return self._escalate(
                facts,
                rule_id=CURRENCY_RULE_ID,
                reason_code=CURRENCY_RULE_ID,
                flag=CURRENCY_RULE_ID,
                why=f"the policy is not written for {facts.currency} ({', '.join(self.document.currencies)})",
                trace=[],
            )
        trace: list[RuleTrace] = []
        claim = facts.approver
        if claim.present and not self.source_may_assert(claim.source, claim.role):
            # A claim the source may not make is not a fact: no rule gets to see it.
            seen = facts.model_copy(update={"approver": ApproverFacts(present=False)})
        else:
            seen = facts
        try:
            try:
                activation = cel_runtime.context(self._variables(seen))
            except cel_runtime.CelEvaluationError as error:
                raise _EvaluationError(INPUTS_RULE_ID, "the inputs", str(error)) from error
            for rule in self.rules:
                matched = self._test(rule.condition, activation, rule.id, f"rule '{rule.id}'")
                trace.append(RuleTrace(rule_id=rule.id, matched=matched))
                if matched:
                    return self._conclude(rule, facts, requested, activation, trace)
            trace.append(RuleTrace(rule_id=DEFAULT_RULE_ID, matched=True))
            return self._conclude(self.default, facts, requested, activation, trace)
        except _EvaluationError as failure:
            return self._escalate(
                facts,
                rule_id=failure.rule_id,
                reason_code=EVALUATION_ERROR,
                flag=EVALUATION_ERROR,
                why=f"{failure.where} could not be evaluated ({failure.message}); no rule after it was considered",
                trace=[item for item in trace if item.rule_id != failure.rule_id],
            )

    def _variables(self, facts: PolicyInput) -> dict[str, Any]:
        return {**facts.activation(), "params": self.document.params}

    @staticmethod
    def _test(condition: _Condition | None, activation: Any, rule_id: str, where: str) -> bool:
        if condition is None:
            return True
        try:
            result = cel_runtime.evaluate(condition.program, activation)
        except cel_runtime.CelEvaluationError as error:
            raise _EvaluationError(rule_id, where, str(error)) from error
        if not isinstance(result, bool):
            raise _EvaluationError(rule_id, where, f"yielded {type(result).__name__} {result!r}, not a bool")
        return result

    def _conclude(
        self, rule: _Rule, facts: PolicyInput, requested: Money, activation: Any, trace: list[RuleTrace]
    ) -> PolicyDecision:
        spec = rule.spec
        outcome, role, reason_code = spec.outcome, spec.role, spec.reason_code
        flags: list[str] = []
        notes: list[str] = []
        applied: list[AppliedAdjustment] = []
        final: Money | None = None
        if outcome != "reject":
            chosen = [
                (adjustment.name, adjustment.spec)
                for adjustment in rule.adjustments
                if self._test(
                    adjustment.condition,
                    activation,
                    rule.id,
                    f"rule '{rule.id}' adjustment '{adjustment.name or adjustment.spec.kind}'",
                )
            ]
            try:
                result = apply_adjustments(requested, facts.refund.lines, chosen)
            except KeyError as error:
                raise _EvaluationError(rule.id, f"rule '{rule.id}'", f"no adjustment amount for {error}") from error
            final, applied, notes = result.final, result.applied, result.notes
        check = self._judge_claim(rule, outcome, role, facts.approver, activation)
        if check is not None:
            notes.append(check.detail)
            if check.honoured:
                outcome = "approve"
                flags.append(APPROVED_AT_SOURCE)
            elif check.verdict != "no_approval_needed":
                flags.append(SOURCE_APPROVAL_NOT_HONOURED)
        if outcome == "approve" and final is not None and not final.is_positive():
            outcome, role, reason_code = "require_approval", self.lowest_role, NOTHING_TO_REFUND
            flags.append(NOTHING_TO_REFUND)
            notes.append("Nothing is left to refund after adjustments: a person decides.")
        return PolicyDecision(
            outcome=outcome,
            rule_id=rule.id,
            policy_version=self.version,
            policy_digest=self.digest,
            policy_source=self.source,
            required_role=role if outcome == "require_approval" or APPROVED_AT_SOURCE in flags else None,
            reason_code=reason_code,
            requested_amount=requested,
            final_amount=final,
            adjustments=applied,
            explanation=self._explain(rule, outcome, role, reason_code, requested, final, applied, notes, trace),
            evaluated_rules=trace,
            flags=flags,
            inputs=facts.snapshot(),
            source_approval=check,
        )

    def _judge_claim(
        self, rule: _Rule, outcome: str, role: str | None, claim: ApproverFacts, activation: Any
    ) -> SourceApprovalCheck | None:
        """Whether an approved_by claim stands for the approval ``rule`` requires. It does only when its
        source may assert its role, the role satisfies the rule's, and neither the rule nor any later rule
        that also matches is in ``not_waivable_by_source``: first-match order must not let a waivable
        rule hide a non-waivable one (a return not yet received that also trips customer velocity)."""
        if not claim.present or claim.id is None or claim.role is None:
            return None
        source = claim.source or "unknown"
        who = f"The approved_by claim {claim.id} ({claim.role}) from source {source}"

        def verdict(honoured: bool, code: str, detail: str, rules: Sequence[str] = ()) -> SourceApprovalCheck:
            return SourceApprovalCheck(
                approver_id=claim.id or "",
                role=claim.role or "",
                source=source,
                honoured=honoured,
                verdict=code,
                detail=detail,
                non_waivable_rules=list(rules),
            )

        if outcome != "require_approval":
            return verdict(False, "no_approval_needed", f"{who} was not needed ({outcome}).")
        if not self.source_may_assert(claim.source, claim.role):
            trust = self.document.sources.get(source)
            allowed = ", ".join(trust.may_assert_roles) if trust and trust.may_assert_roles else "no role"
            return verdict(
                False,
                "source_may_not_assert_role",
                f"{who} was not honoured: the policy lets {source} assert {allowed}; approval by {role} is required.",
            )
        not_waivable = set(self.document.not_waivable_by_source)
        if rule.id in not_waivable:
            return verdict(
                False,
                "rule_not_waivable",
                f"{who} was not honoured: rule '{rule.id}' is not waivable by a source approval; "
                f"approval by {role} through refundflow is required.",
                [rule.id],
            )
        if not self.role_satisfies(claim.role, role):
            return verdict(False, "role_too_low", f"{who} was not honoured: {claim.role} does not satisfy {role}.")
        ids = [item.id for item in self.rules]
        later = self.rules[ids.index(rule.id) + 1 :] if rule.id in ids else ()
        applying = [
            other.id
            for other in later
            if other.id in not_waivable
            and self._test(other.condition, activation, other.id, f"rule '{other.id}' (not waivable)")
        ]
        if applying:
            return verdict(
                False,
                "non_waivable_rule_applies",
                f"{who} was not honoured: {', '.join(applying)} also applies and is not waivable by a source "
                f"approval; approval by {role} through refundflow is required.",
                applying,
            )
        return verdict(True, "honoured", f"{who} was honoured: it satisfies {role}.")

    def _explain(
        self,
        rule: _Rule,
        outcome: str,
        role: str | None,
        reason_code: str | None,
        requested: Money,
        final: Money | None,
        applied: list[AppliedAdjustment],
        notes: list[str],
        trace: list[RuleTrace],
    ) -> str:
        skipped = [item.rule_id for item in trace if not item.matched]
        if rule.id == DEFAULT_RULE_ID:
            parts = [f"Policy {self.version}: no rule matched, the default applies ({rule.spec.description})."]
        else:
            parts = [f"Policy {self.version}: rule '{rule.id}' matched ({rule.spec.description})."]
        if skipped:
            parts.append(f"Not matched before it: {', '.join(skipped)}.")
        if outcome == "approve":
            parts.append("Outcome: approve.")
        elif outcome == "require_approval":
            parts.append(
                f"Outcome: approval by {role} or above required" + (f" ({reason_code})." if reason_code else ".")
            )
        elif outcome == "wait_for_return":
            parts.append(
                "Outcome: wait for the return; decided again when the returns system reports a step"
                + (f" ({reason_code})." if reason_code else ".")
            )
        else:
            parts.append(f"Outcome: reject ({reason_code}).")
        if applied:
            parts.append(
                "Adjustments: "
                + "; ".join(f"{item.kind} -{item.amount} for {item.summary()}" for item in applied)
                + "."
            )
        parts.extend(notes)
        if final is not None:
            parts.append(f"Amount: {requested} requested, {final} after adjustments.")
        else:
            parts.append(f"Amount: {requested} requested, nothing refunded.")
        return " ".join(parts)

    def _escalate(
        self, facts: PolicyInput, *, rule_id: str, reason_code: str, flag: str, why: str, trace: list[RuleTrace]
    ) -> PolicyDecision:
        requested = facts.amount
        return PolicyDecision(
            outcome="require_approval",
            rule_id=rule_id,
            policy_version=self.version,
            policy_digest=self.digest,
            policy_source=self.source,
            required_role=self.highest_role,
            reason_code=reason_code,
            requested_amount=requested,
            final_amount=requested,
            explanation=(
                f"Policy {self.version}: {why}. Outcome: approval by {self.highest_role} required ({reason_code}); "
                f"no adjustments were applied. Amount: {requested} requested."
            ),
            evaluated_rules=trace,
            flags=[flag],
            inputs=facts.snapshot(),
        )


# libyaml when the wheel has it (it does on manylinux): parsing is then ~15x faster than pure Python.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, source: str) -> dict[str, Any]:
    if len(text) > _MAX_DOCUMENT_CHARS:
        raise InvalidPolicy(source, [f"the document is {len(text)} characters, the limit is {_MAX_DOCUMENT_CHARS}"])
    try:
        # Aliases are refused: a policy is small, and aliases allow exponentially large documents.
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise InvalidPolicy(source, [f"line {line}: YAML aliases are not allowed in a policy"])
        data = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise InvalidPolicy(source, [f"not valid YAML: {error}"]) from error
    if not isinstance(data, dict):
        raise InvalidPolicy(source, [f"the document must be a mapping, not {type(data).__name__}"])
    return data


def _where(location: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """``rule 'x' (rules[3])`` for rule errors, the dotted path otherwise."""
    if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
        rules = data.get("rules")
        raw = rules[location[1]] if isinstance(rules, list) and location[1] < len(rules) else None
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        prefix = f"rule '{rule_id}' (rules[{location[1]}])" if rule_id else f"rules[{location[1]}]"
        rest = ".".join(str(part) for part in location[2:])
        return f"{prefix} {rest}".strip()
    return ".".join(str(part) for part in location) or "document"


def _schema_problems(error: ValidationError, data: dict[str, Any]) -> list[str]:
    problems = []
    for item in error.errors():
        location = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            *parent, name = location
            problems.append(f"{_where(tuple(parent), data)}: unknown field '{name}'")
        elif item["type"] == "missing" and location == ("default",):
            problems.append("missing 'default': a policy must say what happens when no rule matches")
        elif item["type"] == "missing":
            *parent, name = location
            problems.append(f"{_where(tuple(parent), data)}: missing field '{name}'")
        else:
            problems.append(f"{_where(location, data)}: {item['msg']}")
    return problems


def _fixed_maps(spec: AdjustmentSpec) -> Iterable[tuple[str, dict[str, int]]]:
    if isinstance(spec, RestockingFee) and spec.per_unit is not None:
        yield "per_unit", spec.per_unit
    if isinstance(spec, ShippingDeduction):
        yield "amount", spec.amount
    if isinstance(spec, PartialRefundCap) and spec.max is not None:
        yield "max", spec.max


def _source_problems(document: PolicyDocument) -> list[str]:
    """Problems of the ``sources:`` section and the ``not_waivable_by_source`` list, naming the source or rule."""
    problems: list[str] = []
    for name, trust in document.sources.items():
        for role in sorted(set(trust.may_assert_roles)):
            if role not in document.roles:
                problems.append(
                    f"sources.{name}: may_assert_roles names unknown role '{role}' (roles: {', '.join(document.roles)})"
                )
            elif trust.may_assert_roles.count(role) > 1:
                problems.append(f"sources.{name}: may_assert_roles lists '{role}' more than once")
    known = [rule.id for rule in document.rules] + [DEFAULT_RULE_ID]
    listed = document.not_waivable_by_source
    for rule_id in sorted(set(listed)):
        if rule_id not in known:
            problems.append(f"not_waivable_by_source: unknown rule '{rule_id}' (rules: {', '.join(known)})")
        elif listed.count(rule_id) > 1:
            problems.append(f"not_waivable_by_source: rule '{rule_id}' is listed more than once")
    return problems


def _consistency_problems(document: PolicyDocument) -> list[str]:
    problems: list[str] = _source_problems(document)
    seen: set[str] = set()
    for rule in document.rules:
        if rule.id in seen:
            problems.append(f"rule '{rule.id}': duplicate rule id")
        if rule.id in (DEFAULT_RULE_ID, CURRENCY_RULE_ID, INPUTS_RULE_ID):
            problems.append(f"rule '{rule.id}': the id '{rule.id}' is reserved")
        seen.add(rule.id)
    outcomes: list[tuple[str, OutcomeSpec]] = [(f"rule '{rule.id}'", rule) for rule in document.rules]
    outcomes.append(("default", document.default))
    for where, spec in outcomes:
        if spec.role is not None and spec.role not in document.roles:
            problems.append(f"{where}: unknown role '{spec.role}' (roles: {', '.join(document.roles)})")
        for item in spec.adjustments:
            if isinstance(item, str) and item not in document.adjustments:
                known = ", ".join(sorted(document.adjustments)) or "none defined"
                problems.append(f"{where}: unknown adjustment '{item}' (adjustments: {known})")
    specs: list[tuple[str, AdjustmentSpec]] = [
        (f"adjustment '{name}'", spec) for name, spec in document.adjustments.items()
    ]
    for where, spec in outcomes:
        specs.extend((f"{where} inline {item.kind}", item) for item in spec.adjustments if not isinstance(item, str))
    for where, adjustment in specs:
        for field, amounts in _fixed_maps(adjustment):
            missing = [currency for currency in document.currencies if currency not in amounts]
            if missing:
                problems.append(f"{where}: {field} has no amount for {', '.join(missing)}")
    return problems


class _Compiler:
    """Compiles every expression once, collecting problems instead of stopping at the first."""

    def __init__(self, document: PolicyDocument) -> None:
        roots = dict(shape_of_model(PolicyInput).fields)
        roots.pop("evaluated_at")
        roots["params"] = shape_of_value(document.params)
        self.roots: dict[str, Shape] = roots
        self.problems: list[str] = []
        self.conditions: list[tuple[str, _Condition]] = []

    def condition(self, where: str, text: str | None) -> _Condition | None:
        if text is None:
            return None
        try:
            program = cel_runtime.compile_expression(text)
        except cel_runtime.CelCompileError as error:
            self.problems.append(f"{where}: 'when' is not valid CEL: {error}")
            return None
        self.problems.extend(f"{where}: {problem}" for problem in check_references(text, self.roots))
        compiled = _Condition(text=text, program=program)
        self.conditions.append((where, compiled))
        return compiled

    def rule(self, rule_id: str, spec: OutcomeSpec, when: str | None, named: dict[str, _Adjustment]) -> _Rule:
        where = f"rule '{rule_id}'" if rule_id != DEFAULT_RULE_ID else DEFAULT_RULE_ID
        adjustments = []
        for item in spec.adjustments:
            if isinstance(item, str):
                adjustments.append(named[item])
            else:
                label = f"{where} inline {item.kind}"
                adjustments.append(_Adjustment(name=None, spec=item, condition=self.condition(label, item.when)))
        return _Rule(id=rule_id, spec=spec, condition=self.condition(where, when), adjustments=tuple(adjustments))

    def check_against_samples(self, document: PolicyDocument) -> None:
        """Evaluate every expression on the synthetic inputs; report the first failure per expression."""
        failed: set[str] = set()
        for name, facts in synthetic_inputs(document.currencies, document.roles):
            activation = cel_runtime.context({**facts.activation(), "params": document.params})
            for where, condition in self.conditions:
                if where in failed:
                    continue
                try:
                    result = cel_runtime.evaluate(condition.program, activation)
                except cel_runtime.CelEvaluationError as error:
                    failed.add(where)
                    self.problems.append(f"{where}: 'when' fails on synthetic input {name}: {error}")
                    continue
                if not isinstance(result, bool):
                    failed.add(where)
                    self.problems.append(
                        f"{where}: 'when' must yield a bool, got {type(result).__name__} {result!r} on {name}"
                    )


def load_policy(text: str, *, source: str) -> Policy:
    """Parse, check and compile a policy document.

    Raises:
        InvalidPolicy: the text is not YAML or breaks the schema (unknown field, bad outcome…), a rule id is
            duplicated, a role or adjustment is unknown, ``default`` is missing, an expression does not
            compile, names an unknown input or field, errors or does not yield a bool on synthetic inputs;
            the ``split_tenders`` section names an unknown rule, kind or provider, lacks the expression its
            rule needs, or its expression does not compile or yield an int priority on synthetic tenders.
    """
    data = _parse(text, source)
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as error:
        raise InvalidPolicy(source, _schema_problems(error, data)) from error
    problems = _consistency_problems(document)
    if problems:
        raise InvalidPolicy(source, problems)
    compiler = _Compiler(document)
    named = {
        name: _Adjustment(name=name, spec=spec, condition=compiler.condition(f"adjustment '{name}'", spec.when))
        for name, spec in document.adjustments.items()
    }
    rules = tuple(compiler.rule(rule.id, rule, rule.when, named) for rule in document.rules)
    default = compiler.rule(DEFAULT_RULE_ID, document.default, None, named)
    if not compiler.problems:
        compiler.check_against_samples(document)
    split_tenders, split_problems = compile_split_tenders(document)
    problems = [*compiler.problems, *split_problems]
    if problems:
        raise InvalidPolicy(source, problems)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Policy(
        document=document, source=source, digest=digest, rules=rules, default=default, split_tenders=split_tenders
    )


@cache
def load_default_policy() -> Policy:
    """The policy shipped with the package (``default_policy.yaml``), loaded once per process.

    Raises:
        InvalidPolicy: the packaged policy is broken (a test catches this before release).
    """
    text = resources.files("refundflow.policy").joinpath("default_policy.yaml").read_text(encoding="utf-8")
    return load_policy(text, source=PACKAGED_SOURCE)
