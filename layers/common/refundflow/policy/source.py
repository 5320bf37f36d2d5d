"""Which policy is in force: the packaged default, or an override from SSM Parameter Store.

A broken override never takes effect: the last good version stays in force in this process, and on a
cold start without one the packaged default decides and the decision is marked ``policy_fallback``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from pydantic import Field

from refundflow import settings
from refundflow.observability import logger
from refundflow.policy.engine import InvalidPolicy, Policy, PolicyDecision, load_default_policy, load_policy
from refundflow.policy.inputs import PolicyInput

POLICY_FALLBACK = "policy_fallback"
POLICY_LAST_GOOD = "policy_last_good"

ParameterFetcher = Callable[[str, int], str]
"""``(name, max_age_seconds) -> text`` of the policy parameter."""


class PolicySourceSettings(settings.EnvModel):
    parameter_name: str | None = Field(default=None, alias="POLICY_PARAMETER_NAME")
    cache_seconds: int = Field(default=300, ge=0, le=86_400, alias="POLICY_CACHE_SECONDS")


def fetch_ssm_parameter(name: str, max_age: int) -> str:
    """The parameter's text through Powertools parameters (cached for ``max_age`` seconds)."""
    # Imported here: the parameters module pulls in boto3, which a function on the packaged policy never needs.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_parameter(name, max_age=max_age)
    if not isinstance(value, str):
        raise TypeError(f"parameter {name} is not text")
    return value


@dataclass(frozen=True)
class PolicySelection:
    policy: Policy
    flag: str | None = None
    problem: str | None = None


class ActivePolicy:
    """The policy in force in this process (create one per process, e.g. through ``active_policy()``)."""

    def __init__(
        self,
        *,
        source_settings: PolicySourceSettings | None = None,
        fetch: ParameterFetcher = fetch_ssm_parameter,
        packaged: Callable[[], Policy] = load_default_policy,
    ) -> None:
        self._settings = source_settings
        self._fetch = fetch
        self._packaged = packaged
        self._last_good: Policy | None = None
        self._last_bad_digest: str | None = None

    def _source_settings(self) -> PolicySourceSettings:
        if self._settings is None:
            self._settings = settings.load(PolicySourceSettings)
        return self._settings

    def select(self) -> PolicySelection:
        """The policy to decide with now, and why, when it is not the configured one."""
        config = self._source_settings()
        name = config.parameter_name
        if not name:
            return PolicySelection(self._packaged())
        source = f"ssm:{name}"
        try:
            text = self._fetch(name, config.cache_seconds)
            digest = hashlib.sha256(text.encode()).hexdigest()
            if self._last_good is not None and self._last_good.digest == digest:
                return PolicySelection(self._last_good)
            if digest == self._last_bad_digest:
                raise InvalidPolicy(source, ["the same invalid version as before"])
            try:
                policy = load_policy(text, source=source)
            except InvalidPolicy:
                self._last_bad_digest = digest
                raise
        except Exception as error:
            problem = f"policy override {name} could not be loaded: {error}"
            logger.error(
                "policy override rejected",
                extra={"policy_parameter": name, "problem": str(error), "error_type": type(error).__name__},
            )
            if self._last_good is not None:
                return PolicySelection(self._last_good, POLICY_LAST_GOOD, problem)
            return PolicySelection(self._packaged(), POLICY_FALLBACK, problem)
        self._last_good = policy
        self._last_bad_digest = None
        logger.info("policy override loaded", extra={"policy_parameter": name, "policy_version": policy.version})
        return PolicySelection(policy)

    def decide(self, facts: PolicyInput) -> PolicyDecision:
        """Decide with the policy in force, marking decisions made on a fallback or a stale version."""
        selection = self.select()
        decision = selection.policy.decide(facts)
        if selection.flag == POLICY_FALLBACK:
            return decision.flagged(
                POLICY_FALLBACK, f"policy_fallback: {selection.problem}; the packaged default policy decided."
            )
        if selection.flag == POLICY_LAST_GOOD:
            return decision.flagged(
                POLICY_LAST_GOOD, f"{selection.problem}; the last good version {selection.policy.version} decided."
            )
        return decision


@cache
def active_policy() -> ActivePolicy:
    """The process-wide ActivePolicy (a cached factory, like the AWS clients)."""
    return ActivePolicy()
