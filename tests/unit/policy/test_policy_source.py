"""ActivePolicy: the packaged default, an SSM override, the last good version and the cold-start fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from policy_builders import MINIMAL_POLICY, make_facts, make_refund, policy_text

from refundflow import settings
from refundflow.policy import ActivePolicy, PolicySourceSettings, load_default_policy
from refundflow.policy.source import POLICY_FALLBACK, POLICY_LAST_GOOD, fetch_ssm_parameter

PARAMETER = "/refundflow/policy"
OVERRIDE = policy_text(version="override.7")


class FakeParameterStore:
    """Hands out the current text of one parameter, or fails like an unreachable SSM."""

    def __init__(self, text: str | None) -> None:
        self.text = text
        self.calls: list[tuple[str, int]] = []

    def __call__(self, name: str, max_age: int) -> str:
        self.calls.append((name, max_age))
        if self.text is None:
            raise RuntimeError("GetParameter failed: throttled")
        return self.text


def active(store: FakeParameterStore, name: str | None = PARAMETER) -> ActivePolicy:
    return ActivePolicy(
        source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=name, POLICY_CACHE_SECONDS=60),
        fetch=store,
    )


def test_without_a_parameter_the_packaged_default_decides() -> None:
    # GIVEN no override configured
    store = FakeParameterStore(OVERRIDE)
    decision = active(store, name=None).decide(make_facts())
    # THEN the packaged policy decides and SSM is never asked
    assert (decision.policy_version, decision.policy_source, decision.flags) == (
        "2026.12.1",
        "packaged:default_policy.yaml",
        [],
    )
    assert store.calls == []


def test_override_from_the_parameter_decides_and_is_fetched_with_the_cache_age() -> None:
    store = FakeParameterStore(OVERRIDE)
    decision = active(store).decide(make_facts())
    assert (decision.policy_version, decision.policy_source, decision.flags) == ("override.7", f"ssm:{PARAMETER}", [])
    assert store.calls == [(PARAMETER, 60)]


def test_unchanged_override_is_not_compiled_again() -> None:
    source = active(FakeParameterStore(OVERRIDE))
    assert source.select().policy is source.select().policy


def test_bad_override_keeps_the_last_good_version(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a good override in force
    store = FakeParameterStore(OVERRIDE)
    source = active(store)
    source.decide(make_facts())
    # WHEN the parameter is changed to a policy with a broken rule
    store.text = MINIMAL_POLICY.replace("refund.amount > params.limit[refund.currency]", "refund.amount >")
    decision = source.decide(make_facts(make_refund(50_000)))
    # THEN the last good version still decides, the decision says so, and the error is logged
    assert (decision.policy_version, decision.rule_id) == ("override.7", "big")
    assert decision.flags == [POLICY_LAST_GOOD]
    assert "not valid CEL" in decision.explanation
    assert "policy override rejected" in caplog.messages


def test_fixed_override_replaces_the_last_good_version() -> None:
    store = FakeParameterStore(OVERRIDE)
    source = active(store)
    source.select()
    store.text = "not: [valid"
    assert source.select().flag == POLICY_LAST_GOOD
    store.text = policy_text(version="override.8")
    selection = source.select()
    assert (selection.policy.version, selection.flag) == ("override.8", None)


def test_bad_override_on_a_cold_start_falls_back_to_the_packaged_default() -> None:
    # GIVEN a fresh process whose parameter holds an invalid policy
    source = active(FakeParameterStore("version: 1\nrules: []\n"))
    # WHEN a refund is decided
    decision = source.decide(make_facts())
    # THEN the packaged default decides and the decision is marked policy_fallback
    assert decision.policy_version == load_default_policy().version
    assert decision.flags[-1] == POLICY_FALLBACK
    assert decision.explanation.startswith("policy_fallback: policy override /refundflow/policy could not be loaded")
    assert decision.to_record().explanation is not None
    assert decision.to_record().explanation.startswith("policy_fallback")  # type: ignore[union-attr]


def test_unreachable_parameter_store_on_a_cold_start_falls_back() -> None:
    selection = active(FakeParameterStore(None)).select()
    assert selection.flag == POLICY_FALLBACK
    assert selection.problem is not None
    assert "throttled" in selection.problem


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICY_PARAMETER_NAME", "/refundflow/prod/policy")
    monkeypatch.setenv("POLICY_CACHE_SECONDS", "120")
    loaded = settings.load(PolicySourceSettings)
    assert (loaded.parameter_name, loaded.cache_seconds) == ("/refundflow/prod/policy", 120)


def test_settings_default_to_the_packaged_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLICY_PARAMETER_NAME", raising=False)
    assert settings.load(PolicySourceSettings).parameter_name is None


@pytest.fixture
def ssm_parameter() -> Iterator[str]:
    import boto3
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    # Powertools keeps its providers (and their boto3 clients) per process: start and end without them.
    parameters.clear_caches()
    with mock_aws():
        boto3.client("ssm").put_parameter(Name=PARAMETER, Value=OVERRIDE, Type="String", Tier="Advanced")
        yield PARAMETER
    parameters.clear_caches()


def test_ssm_fetcher_reads_the_parameter_through_powertools(ssm_parameter: str) -> None:
    assert fetch_ssm_parameter(ssm_parameter, 0) == OVERRIDE
