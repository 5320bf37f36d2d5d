"""The platform catalog: the packaged file, its schema, the lookups and the code-by-convention helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from refundflow import catalog
from refundflow.errors import ConfigurationError, InvalidRequest, UnsupportedProvider
from refundflow.models import BooksSystem, PaymentProvider

MINIMAL = """
platforms:
  - name: {name}
    title: Probe
    roles: [payment]
    client: shared HTTP client
    docs: https://example.com/docs
    payment:
      idempotency: {{carrier: header, name: Idempotency-Key, key_lifetime_hours: 24}}
      find_by_reference: false
      outcome: webhook_only
    inbound:
      verification: HMAC
    secrets: {{api: [api_key], verification: [hmac_keys]}}
"""


def test_packaged_catalog_lists_stripe_and_xero_with_their_roles() -> None:
    entries = catalog.catalog().by_name()
    assert entries["stripe"].roles == ["payment"]
    assert entries["xero"].roles == ["books"]
    assert [entry.name for entry in catalog.payment_platforms()] == catalog.names("payment")
    assert "stripe" in catalog.names("payment")
    assert "xero" in catalog.names("books")
    assert "xero" not in catalog.names("payment")


def test_every_catalog_name_is_a_member_of_its_role_enum() -> None:
    for entry in catalog.platforms():
        if "payment" in entry.roles:
            assert PaymentProvider(entry.name).value == entry.name
        if "books" in entry.roles:
            assert BooksSystem(entry.name).value == entry.name


def test_every_platform_with_a_function_has_a_simulator_and_https_api_settings() -> None:
    for entry in catalog.platforms():
        if entry.function_roles:
            assert entry.simulator, entry.name
            assert entry.secrets.api, entry.name
        for setting in entry.settings:
            if setting.env.endswith("_BASE"):
                assert setting.https, setting.env
                assert setting.local is not None, setting.env


def test_conventions_name_functions_logical_ids_and_secrets() -> None:
    stripe, xero = catalog.platform("stripe"), catalog.platform("xero")
    assert stripe.function_name("payment", "prod") == "prod-refund-stripe"
    assert xero.function_name("books", "prod") == "prod-books-xero"
    assert stripe.logical_id("payment") == "RefundStripeFunction"
    assert xero.logical_id("books") == "BooksXeroFunction"
    assert stripe.api_secret_name("refundflow/") == "refundflow/stripe"
    assert stripe.verification_secret_name("refundflow/") == "refundflow/webhooks/stripe"
    assert catalog.parse(MINIMAL.format(name="amazon_pay")).platforms[0].camel == "AmazonPay"


def test_lookups_refuse_what_is_not_deployed_with_the_role_s_code() -> None:
    with pytest.raises(InvalidRequest) as unknown:
        catalog.platform("nope")
    assert unknown.value.code == "platform_not_supported"
    with pytest.raises(UnsupportedProvider) as not_payment:
        catalog.payment_platform("xero")
    assert not_payment.value.code == "provider_not_supported"
    with pytest.raises(InvalidRequest) as not_books:
        catalog.books_platform("stripe")
    assert not_books.value.code == "books_not_supported"
    with pytest.raises(InvalidRequest) as no_webhooks:
        catalog.inbound_platform("xero")
    assert no_webhooks.value.code == "platform_not_supported"
    assert catalog.inbound_platform("stripe").name == "stripe"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("name: probe", "name: Probe!"), "name"),
        (lambda text: text.replace("roles: [payment]", "roles: [books]"), "payment record"),
        (lambda text: text.replace("roles: [payment]", "roles: [payment, payment]"), "twice"),
        (lambda text: text.replace("    inbound:\n      verification: HMAC\n", ""), "inbound"),
        (lambda text: text.replace("verification: [hmac_keys]", "verification: []"), "verification secret"),
        (lambda text: text.replace("name: Idempotency-Key, ", ""), "needs a name"),
        (lambda text: text.replace("carrier: header, name: Idempotency-Key, ", "carrier: query, "), "needs a name"),
        (lambda text: text.replace("carrier: header", "carrier: path"), "carrier"),
        (
            lambda text: text.replace("verification: HMAC\n", "verification: HMAC\n      content_types: [text/xml]\n"),
            "text/xml",
        ),
        (lambda text: text.replace("outcome: webhook_only", "outcome: someday"), "outcome"),
        (lambda text: text + "    unexpected: 1\n", "unexpected"),
        (lambda text: text + text.split("platforms:\n", 1)[1], "duplicate name"),
    ],
)
def test_schema_refuses_a_broken_entry_naming_the_problem(edit: object, message: str) -> None:
    text = edit(MINIMAL.format(name="probe"))  # type: ignore[operator]
    with pytest.raises(ConfigurationError, match=message):
        catalog.parse(text)


def test_https_settings_need_an_https_default() -> None:
    text = MINIMAL.format(name="probe") + (
        "    settings:\n      - {env: PROBE_API_BASE, parameter: ProbeApiBase, default: 'http://x', https: true}\n"
    )
    with pytest.raises(ConfigurationError, match="https"):
        catalog.parse(text)


def test_duplicate_setting_env_across_platforms_is_refused() -> None:
    setting = "    settings:\n      - {env: SHARED_BASE, parameter: %s, default: x}\n"
    text = MINIMAL.format(name="one") + setting % "OneBase" + MINIMAL.format(name="two").split("platforms:\n")[1]
    text += setting % "TwoBase"
    with pytest.raises(ConfigurationError, match="duplicate setting env"):
        catalog.parse(text)


@pytest.fixture
def probe_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A platform package that exists only for this test, found by the catalog's naming convention."""
    import refundflow.platforms

    package = tmp_path / "kitprobe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "connector.py").write_text("def connector():\n    return ('connector', 'kitprobe')\n")
    (package / "inbound.py").write_text("def inbound():\n    return ('inbound', 'kitprobe')\n")
    (package / "amounts.py").write_text("def representable(money):\n    return 'never'\n")
    monkeypatch.setattr(refundflow.platforms, "__path__", [*refundflow.platforms.__path__, str(tmp_path)])
    monkeypatch.setattr(catalog, "catalog", lambda: catalog.parse(MINIMAL.format(name="kitprobe")))
    yield "kitprobe"
    for module in [name for name in sys.modules if name.startswith("refundflow.platforms.kitprobe")]:
        del sys.modules[module]


def test_code_is_found_by_convention(probe_platform: str) -> None:
    assert catalog.connector(probe_platform) == ("connector", "kitprobe")
    assert catalog.inbound(probe_platform) == ("inbound", "kitprobe")
    rule = catalog.representable(probe_platform)
    assert rule is not None
    assert rule(None) == "never"  # type: ignore[arg-type]


def test_a_platform_without_a_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "catalog", lambda: catalog.parse(MINIMAL.format(name="kitghost")))
    with pytest.raises(ConfigurationError, match="no connector module"):
        catalog.connector("kitghost")
    assert catalog.representable("kitghost") is None
    with pytest.raises(InvalidRequest):
        catalog.connector("stripe")  # not in this (test) catalog


def test_a_query_parameter_carrier_reaches_the_capabilities_record() -> None:
    # GIVEN QuickBooks, whose requestid is a query parameter
    # WHEN its capabilities are built from the catalog
    capabilities = catalog.books_capabilities("quickbooks")
    # THEN the record says where the key travels, and that it is a key
    assert (capabilities.idempotency.carrier, capabilities.idempotency.name) == ("query", "requestid")
    assert capabilities.idempotency.supported
