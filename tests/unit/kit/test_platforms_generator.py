"""tools/platforms.py: what `make platforms` generates from the catalog, and that `make platforms-check` fails on
drift (a hand edit of a generated block, a catalog entry not regenerated)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from local.cfn import ROOT, Stack, _CfnLoader
from local.lambdas import load_handler_module, own_environments
from refundflow import catalog
from tools import platforms

PROBE = """
  - name: probepay
    title: Probepay
    roles: [payment]
    client: shared HTTP client
    docs: https://docs.probepay.example/refunds
    requirements: [requests]
    payment:
      idempotency: {carrier: body, name: idempotency_key, key_lifetime_hours: 24}
      find_by_reference: false
      outcome: pollable
    inbound:
      verification: HMAC-SHA256 of the notification URL and body
    settings:
      - {env: PROBEPAY_API_BASE, parameter: ProbepayApiBase, default: "https://api.probepay.example", https: true,
         local: "{sandbox}/probepay"}
    secrets: {api: [access_token], verification: [signature_keys]}
    simulator: local.simulators.probepay:ProbepaySimulator
"""


def with_probe() -> catalog.Catalog:
    return catalog.parse(platforms.CATALOG.read_text() + PROBE)


def test_the_committed_artefacts_match_the_catalog() -> None:
    assert platforms.run(write=False) == 0


def test_a_new_entry_gets_its_function_log_group_parameter_build_target_and_pinned_requirements() -> None:
    files = platforms.rendered_files(with_probe())
    template = yaml.load(files[platforms.TEMPLATE], Loader=_CfnLoader)
    function = template["Resources"]["RefundProbepayFunction"]["Properties"]
    assert function["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-refund-probepay"}
    assert function["CodeUri"] == "functions/payment_platform/"
    assert function["Environment"]["Variables"]["PLATFORM"] == "probepay"
    assert function["Environment"]["Variables"]["PROBEPAY_API_BASE"] == {"Ref": "ProbepayApiBase"}
    secrets = [policy for policy in function["Policies"] if "AWSSecretsManagerGetSecretValuePolicy" in policy]
    arns = [policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Fn::Sub"] for policy in secrets]
    assert any(arn.endswith(":secret:${SecretsPrefix}probepay-??????") for arn in arns)
    assert not any("webhooks/" in arn for arn in arns)
    assert "RefundProbepayLogGroup" in template["Resources"]
    assert template["Parameters"]["ProbepayApiBase"]["AllowedPattern"] == "^https://"
    makefile = files[ROOT / "functions" / "payment_platform" / "Makefile"]
    assert "build-RefundProbepayFunction: PLATFORM_REQUIREMENTS := requirements-probepay.txt" in makefile
    pins = platforms.constraint_pins()
    requirements = files[ROOT / "functions" / "payment_platform" / "requirements-probepay.txt"]
    assert f"requests=={pins['requests']}" in requirements.splitlines()


def test_an_unpinned_requirement_is_refused() -> None:
    broken = catalog.parse(platforms.CATALOG.read_text() + PROBE.replace("[requests]", "[not-a-pinned-package]"))
    with pytest.raises(platforms.GenerationError, match=r"not pinned in constraints\.txt"):
        platforms.rendered_files(broken)


@pytest.fixture
def scratch_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The generated files copied to a scratch tree, the generator pointed at it."""
    for relative in (
        "template.yaml",
        "README.md",
        "constraints.txt",
        "functions",
        "layers/common/refundflow/platforms",
    ):
        source = ROOT / relative
        target = tmp_path / relative
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    monkeypatch.setattr(platforms, "ROOT", tmp_path)
    monkeypatch.setattr(platforms, "CATALOG", tmp_path / "layers/common/refundflow/platforms/catalog.yaml")
    monkeypatch.setattr(platforms, "TEMPLATE", tmp_path / "template.yaml")
    monkeypatch.setattr(platforms, "README", tmp_path / "README.md")
    monkeypatch.setattr(platforms, "CONSTRAINTS", tmp_path / "constraints.txt")
    monkeypatch.setattr(platforms, "INTAKE_REQUIREMENTS", tmp_path / "functions/receive_webhook/requirements.txt")
    return tmp_path


def test_check_fails_on_a_hand_edit_of_a_generated_block_and_write_repairs_it(
    scratch_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = scratch_repo / "template.yaml"
    template.write_text(template.read_text().replace("CodeUri: functions/payment_platform/", "CodeUri: functions/x/"))
    assert platforms.run(write=False) == 1
    assert "out of date: template.yaml" in capsys.readouterr().err
    assert platforms.run(write=True) == 0
    assert platforms.run(write=False) == 0


def test_check_fails_when_an_entry_was_added_without_regenerating(
    scratch_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_file = scratch_repo / "layers/common/refundflow/platforms/catalog.yaml"
    catalog_file.write_text(catalog_file.read_text() + PROBE)
    assert platforms.run(write=False) == 1
    errors = capsys.readouterr().err
    assert "functions/payment_platform/requirements-probepay.txt" in errors
    assert "template.yaml" in errors
    assert platforms.run(write=True) == 0
    assert (scratch_repo / "functions/payment_platform/requirements-probepay.txt").is_file()
    # AND removing the entry again removes its requirements file
    catalog_file.write_text(catalog_file.read_text().replace(PROBE, ""))
    assert platforms.run(write=False) == 1
    assert platforms.run(write=True) == 0
    assert not (scratch_repo / "functions/payment_platform/requirements-probepay.txt").exists()


def test_each_platform_function_loads_with_its_own_platform_in_one_process(tmp_path: Path) -> None:
    stack = Stack.from_template("refundflow")
    own = own_environments(stack)
    for entry in catalog.platforms():
        for role in entry.function_roles:
            assert own[entry.logical_id(role)] == {"PLATFORM": entry.name}
    assert own["GetRefundFunction"] == {}
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "app.py").write_text("import os\nSEEN = os.environ['PLATFORM']\n")
    first = load_handler_module(folder, "kit_probe_a", {"PLATFORM": "one"})
    second = load_handler_module(folder, "kit_probe_b", {"PLATFORM": "two"})
    assert (first.SEEN, second.SEEN) == ("one", "two")
    assert "PLATFORM" not in __import__("os").environ


def test_the_bundle_check_also_imports_what_a_platform_function_loads_on_first_use(tmp_path: Path) -> None:
    import sys

    from local.tools import first_use_imports, import_problem

    # GIVEN the catalog: each platform function loads its connector on first use, intake the routes other than refund
    # requests (refundflow.intake_routes) and every inbound module
    for entry in catalog.platforms():
        for role in entry.function_roles:
            assert first_use_imports(entry.logical_id(role)) == (f"refundflow.platforms.{entry.name}.connector",)
    inbound = {f"refundflow.platforms.{entry.name}.inbound" for entry in catalog.platforms() if entry.inbound}
    assert set(first_use_imports("ReceiveWebhookFunction")) == {"refundflow.intake_routes", *inbound}
    assert first_use_imports("GetRefundFunction") == ()
    # WHEN a handler imports but the SDK its connector needs is not in the bundle
    (tmp_path / "app.py").write_text("def lambda_handler(event, context):\n    return None\n")
    (tmp_path / "connector.py").write_text("import an_sdk_the_bundle_lacks\n")
    # THEN the check reports it, as a cold start's first invocation would fail
    problem = import_problem(sys.executable, "app.lambda_handler", [tmp_path], {}, ("connector",))
    assert problem == "ModuleNotFoundError: No module named 'an_sdk_the_bundle_lacks'"
    assert import_problem(sys.executable, "app.lambda_handler", [tmp_path], {}) is None


def test_a_new_payment_platform_is_watched_by_the_provider_alarm_and_on_the_dashboard() -> None:
    # GIVEN the catalog with one more payment platform WHEN the template is rendered
    template = yaml.load(platforms.rendered_files(with_probe())[platforms.TEMPLATE], Loader=_CfnLoader)
    resources = template["Resources"]
    # THEN the provider error-rate alarm sums its errors and calls with every other payment platform's
    queries = resources["ProviderErrorRateAlarm"]["Properties"]["Metrics"]
    watched = {
        (query["MetricStat"]["Metric"]["MetricName"], query["MetricStat"]["Metric"]["Dimensions"][1]["Value"])
        for query in queries
        if "MetricStat" in query
    }
    names = [entry.name for entry in with_probe().platforms if entry.payment is not None]
    assert "probepay" in names
    assert watched == {(metric, name) for name in names for metric in ("ProviderErrors", "ProviderCalls")}
    expression = queries[0]["Expression"]["Fn::Sub"]
    assert all(f"calls{index}" in expression for index in range(len(names)))
    # AND the dashboard's error-rate and latency widgets show it (the body stays valid JSON)
    body = resources["OpsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = {widget["properties"].get("title", ""): widget for widget in json.loads(body)["widgets"]}
    for title in ("Provider and books error rate", "Provider and books latency"):
        widget = next(widget for name, widget in widgets.items() if name.startswith(title))
        platforms_shown = {metric[5] for metric in widget["properties"]["metrics"] if isinstance(metric[0], str)}
        assert "probepay" in platforms_shown


@pytest.mark.parametrize(
    ("carrier", "words"),
    [
        ("header", "idempotency header `requestid`, kept 24 h"),
        ("body", "idempotency body `requestid`, kept 24 h"),
        ("query", "idempotency query parameter `requestid`, kept 24 h"),
    ],
)
def test_the_readme_table_names_where_the_key_travels(carrier: str, words: str) -> None:
    # GIVEN a platform whose key is carried as a header, a body field or a query parameter
    probe = PROBE.replace("{carrier: body, name: idempotency_key", f"{{carrier: {carrier}, name: requestid")
    table = platforms.readme_table(catalog.parse(platforms.CATALOG.read_text() + probe))
    # THEN its row says so
    (row,) = [line for line in table.splitlines() if "[Probepay]" in line]
    assert words in row


def test_the_readme_table_shows_quickbooks_requestid_as_a_query_parameter() -> None:
    table = platforms.readme_table(catalog.load_path(platforms.CATALOG))
    (row,) = [line for line in table.splitlines() if "[QuickBooks Online]" in line]
    assert "idempotency query parameter `requestid`" in row
