"""The policy document: what a YAML policy file may say, checked field by field (unknown fields rejected)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from refundflow.models import PaymentProvider, TenderKind
from refundflow.money import CurrencyCode
from refundflow.policy.inputs import INT64_MAX, RoleName

# wait_for_return: the refund waits for its goods (AWAITING_RETURN) and is decided again on each step the returns
# system reports, until the rule no longer matches; rejected with return_not_received when they never come.
Outcome = Literal["approve", "require_approval", "reject", "wait_for_return"]
OUTCOMES: tuple[Outcome, ...] = ("approve", "require_approval", "reject", "wait_for_return")

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Expression = Annotated[str, StringConstraints(min_length=1)]
# The characters of a refund request's source.system (models.Identifier).
SourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@+\-/#]{1,128}$")]
BasisPoints = Annotated[int, Field(ge=0, le=10_000, description="1/100 of a percent: 1500 is 15 %.")]
MinorAmount = Annotated[int, Field(ge=0, le=INT64_MAX)]
PerCurrency = dict[CurrencyCode, MinorAmount]


class DocumentModel(BaseModel):
    # strict: a quoted "1500" where an integer is expected is a mistake, not something to coerce
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AdjustmentBase(DocumentModel):
    description: Text
    when: Expression | None = Field(default=None, description="CEL; the adjustment applies only when true.")


class RestockingFee(AdjustmentBase):
    """A fee per refunded line: a share of the line's amount, or a fixed amount per unit."""

    kind: Literal["restocking_fee"]
    categories: Annotated[list[Name], Field(min_length=1)] | None = Field(
        default=None, description="Lines in these categories; every line when omitted."
    )
    basis_points: BasisPoints | None = None
    per_unit: PerCurrency | None = None

    @model_validator(mode="after")
    def _one_rate(self) -> RestockingFee:
        if (self.basis_points is None) == (self.per_unit is None):
            raise ValueError("a restocking_fee needs exactly one of basis_points or per_unit")
        return self


class ShippingDeduction(AdjustmentBase):
    """A fixed amount kept once per refund (the return label)."""

    kind: Literal["shipping_deduction"]
    amount: PerCurrency


class PartialRefundCap(AdjustmentBase):
    """The refund is at most a share of the requested amount and/or a fixed maximum."""

    kind: Literal["partial_refund_cap"]
    basis_points: BasisPoints | None = None
    max: PerCurrency | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> PartialRefundCap:
        if self.basis_points is None and self.max is None:
            raise ValueError("a partial_refund_cap needs basis_points, max or both")
        return self


AdjustmentSpec = Annotated[RestockingFee | ShippingDeduction | PartialRefundCap, Field(discriminator="kind")]


class OutcomeSpec(DocumentModel):
    description: Text
    outcome: Outcome
    role: RoleName | None = Field(default=None, description="require_approval: this role or above approves.")
    reason_code: ReasonCode | None = None
    adjustments: list[Name | AdjustmentSpec] = Field(
        default_factory=list, description="Names of the document's adjustments, or adjustments written inline."
    )

    @model_validator(mode="after")
    def _consistent(self) -> OutcomeSpec:
        if self.outcome == "require_approval" and self.role is None:
            raise ValueError("require_approval needs a role")
        if self.outcome != "require_approval" and self.role is not None:
            raise ValueError(f"role is only meaningful with require_approval, not {self.outcome}")
        if self.outcome == "reject" and self.reason_code is None:
            raise ValueError("reject needs a reason_code")
        if self.outcome == "reject" and self.adjustments:
            raise ValueError("a rejected refund pays nothing: reject takes no adjustments")
        return self


class RuleSpec(OutcomeSpec):
    id: Name
    when: Expression


class SourceTrust(DocumentModel):
    """What one source system (named as in the signing-secret document) may assert about a refund."""

    may_assert_roles: list[RoleName] = Field(
        default_factory=list,
        description="Roles an approved_by claim from this source may carry and be honoured; none when empty.",
    )


# The names of refundflow.domain.allocation.AllocationRule (a test keeps the two in step; the document stays free of
# the domain's enum so that strict validation takes the YAML's plain strings).
AllocationRuleName = Literal[
    "last_captured_first", "proportional", "least_fee_first", "store_credit_last", "expression"
]
# refundflow.models.TenderKind and PaymentProvider values (checked in SplitTenders' validator).
TenderKindName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")]
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")]
# CEL has no loops, so an expression's cost grows with its length: a tender priority is one short expression.
MAX_ALLOCATION_EXPRESSION_CHARS = 1024


class SplitTenders(DocumentModel):
    """How a refund of an order paid with several tenders is divided among them
    (``refundflow.policy.split_tenders``)."""

    rule: AllocationRuleName = Field(
        default="last_captured_first", description="The rule used when the refund request names none."
    )
    allowed_request_rules: list[AllocationRuleName] = Field(
        default_factory=list,
        description="Rules a refund request may name instead of ``rule`` (``rule`` itself is always allowed).",
    )
    expression: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ALLOCATION_EXPRESSION_CHARS)] | None = (
        Field(
            default=None,
            description="CEL over ``tender`` and ``refund`` yielding an int priority, lower first (rule expression).",
        )
    )
    fee_basis_points: dict[TenderKindName, BasisPoints] = Field(
        default_factory=dict, description="What refunding to a tender of this kind costs (least_fee_first)."
    )
    fee_basis_points_by_provider: dict[ProviderName, dict[TenderKindName, BasisPoints]] = Field(
        default_factory=dict, description="Per provider and kind; wins over fee_basis_points."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SplitTenders:
        kinds = {kind.value for kind in TenderKind}
        providers = {provider.value for provider in PaymentProvider}
        per_provider = [kind for fees in self.fee_basis_points_by_provider.values() for kind in fees]
        named = [*self.fee_basis_points, *per_provider]
        unknown_kinds = sorted(set(named) - kinds)
        if unknown_kinds:
            raise ValueError(
                f"unknown tender kind {', '.join(unknown_kinds)} in the fees (kinds: {', '.join(sorted(kinds))})"
            )
        unknown_providers = sorted(set(self.fee_basis_points_by_provider) - providers)
        if unknown_providers:
            raise ValueError(
                f"fee_basis_points_by_provider: unknown provider {', '.join(unknown_providers)} "
                f"(providers: {', '.join(sorted(providers))})"
            )
        repeated = sorted({rule for rule in self.allowed_request_rules if self.allowed_request_rules.count(rule) > 1})
        if repeated:
            raise ValueError(f"allowed_request_rules lists {', '.join(repeated)} more than once")
        uses_expression = "expression" in (self.rule, *self.allowed_request_rules)
        if uses_expression and self.expression is None:
            raise ValueError("the expression rule needs an expression (CEL yielding an int priority, lower first)")
        if self.expression is not None and not uses_expression:
            raise ValueError(
                "an expression is given but no rule uses it: set rule: expression or allow it in allowed_request_rules"
            )
        return self


class PolicyDocument(DocumentModel):
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    currencies: Annotated[list[CurrencyCode], Field(min_length=1)] = Field(
        description="Currencies the policy was written for; a refund in another one goes to the highest role."
    )
    roles: Annotated[list[RoleName], Field(min_length=1)] = Field(description="Ascending authority.")
    params: dict[Name, object] = Field(default_factory=dict)
    adjustments: dict[Name, AdjustmentSpec] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)
    default: OutcomeSpec
    sources: dict[SourceName, SourceTrust] = Field(
        default_factory=dict,
        description="Source systems whose approved_by claims may stand for a human approval; a source not "
        "listed may assert nothing.",
    )
    not_waivable_by_source: list[Name] = Field(
        default_factory=list,
        description="Rule ids (or 'default') that no approved_by claim satisfies: a person approves through "
        "POST /refunds/{id}/approval, whatever the source may assert.",
    )
    split_tenders: SplitTenders = Field(
        default_factory=SplitTenders,
        description="How a refund of an order paid with several tenders is divided among them.",
    )

    @field_validator("currencies", "roles")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return values

    @field_validator("default")
    @classmethod
    def _default_decides(cls, default: OutcomeSpec) -> OutcomeSpec:
        if default.outcome == "wait_for_return":
            # A wait ends when its rule stops matching; the default always applies, so it would never end.
            raise ValueError("the default cannot wait_for_return: only a rule, whose condition the return ends")
        return default

    @field_validator("params")
    @classmethod
    def _plain_values(cls, params: dict[str, object]) -> dict[str, object]:
        for name, value in params.items():
            _check_param(f"params.{name}", value)
        return params


def _check_param(path: str, value: object) -> None:
    """Params are integers, strings, booleans, lists and maps: no floats (money is minor units), no nulls."""
    if isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -INT64_MAX <= value <= INT64_MAX:
            raise ValueError(f"{path}: {value} does not fit a 64-bit CEL integer")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_param(f"{path}[{index}]", item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: key {key!r} is not a string (quote it)")
            _check_param(f"{path}.{key}", item)
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: {value} is a float; use integers (minor units, basis points, days)")
    raise ValueError(f"{path}: {type(value).__name__} values are not allowed")
