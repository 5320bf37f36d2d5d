"""Every request XeroLedger sends, validated against Xero's official OpenAPI spec (xero-accounting.yaml).

The connector is driven against the Xero simulator through the refund scenarios; the simulator records each
request it received, which is rebuilt with Xero's real server URL and validated by openapi-core. The identity
endpoint is outside that spec and is checked against Xero's documented refresh-token form fields instead
(``grant_type``, ``refresh_token``, client credentials as HTTP Basic: the ``RefreshToken`` schema of
XeroAPI/Xero-OpenAPI ``xero-identity.yaml`` and developer.xero.com/documentation/guides/oauth2/auth-flow).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.validation.request.exceptions import InvalidRequestBody, MissingRequiredParameter

from local.simulators.base import FaultRule
from local.simulators.xero import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    DEFAULT_TENANT_ID,
    XeroSimulator,
)
from refundflow.connectors.http import HttpClient
from refundflow.connectors.xero import XeroLedger, XeroTokenSource
from refundflow.errors import TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import BooksSystem, CustomerContact, InvoiceReference, PaymentProvider, RefundLine
from refundflow.money import Money
from refundflow.ports import CreditBooking
from tests.support.servers import serve_wsgi

XERO_SERVER = "https://api.xero.com"
ACCOUNTING = "/api.xro/2.0/"
IDENTITY_TOKEN_PATH = "/identity/connect/token"
IDENTITY_FORM_FIELDS = {"grant_type", "refresh_token", "client_id", "client_secret"}
KEY_OPERATIONS = {
    "/CreditNotes": "xero-creditnote",
    "/Allocations": "xero-allocation",
    "/Payments": "xero-payment",
}

# openapi-core does not implement OAuth2 security schemes and says so with a warning; the bearer header and the
# tenant header are asserted by these tests themselves.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


@cache
def _load_spec(path: str) -> OpenAPI:
    # The official file fails the strict spec check (string 'false' defaults on booleans); validation still works.
    return OpenAPI.from_file_path(path, config=Config(spec_validator_cls=None))


@pytest.fixture
def xero_spec(contracts_dir: Path) -> OpenAPI:
    return _load_spec(str(contracts_dir / "xero-accounting.yaml"))


class Store:
    """The Xero secret, as Secrets Manager would hold it."""

    def __init__(self) -> None:
        self.value: dict[str, Any] = {
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "refresh_token": DEFAULT_REFRESH_TOKEN,
            "tenant_id": DEFAULT_TENANT_ID,
        }

    def load(self, force: bool) -> dict[str, Any]:
        return dict(self.value)

    def save(self, value: dict[str, Any]) -> None:
        self.value = dict(value)


def _booking(invoice_id: str, minor: int, lines: list[RefundLine] | None = None) -> CreditBooking:
    return CreditBooking(
        refund_id=derive_refund_id("contract", uuid.uuid4().hex),
        invoice=InvoiceReference(system=BooksSystem.XERO, invoice_id=invoice_id),
        amount=Money.of(minor, "USD"),
        lines=lines or [],
        customer=CustomerContact(email="ada@example.com"),
        booking_date=date(2026, 5, 1),
        reference="RMA-2001",
        payment_provider=PaymentProvider.STRIPE,
    )


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[XeroSimulator, str, list[dict[str, Any]]]]:
    """Drive the connector through the refund scenarios once; yield every request the simulator received."""
    sim = XeroSimulator()
    with serve_wsgi(sim) as url:
        store = Store()
        tokens = XeroTokenSource(
            identity_base=f"{url}/identity",
            load_secret=store.load,
            save_secret=store.save,
            http=HttpClient(platform="xero", base_url=f"{url}/identity", timeout=(2.0, 5.0)),
        )
        ledger = XeroLedger(
            tokens=tokens,
            api_base=f"{url}/api.xro/2.0",
            http=HttpClient(platform="xero", base_url=f"{url}/api.xro/2.0", timeout=(2.0, 5.0)),
        )
        contact = sim.add_contact("Contract Customer", "contract@example.com")

        def invoice(*lines: tuple[str, int, str], paid: Any = None) -> str:
            created = sim.add_invoice(contact["ContactID"], [(*line, "200", "OUTPUT2") for line in lines])
            if paid is not None:
                sim.pay_invoice(created["InvoiceID"], None if paid is True else paid)
            return str(created["InvoiceID"])

        # paid invoice: credit note + cash refund
        paid = _booking(invoice(("Walnut desk", 1, "249.00"), paid=True), 24900)
        assert ledger.find_credit_document(paid) is None
        ledger.record_refund(paid)
        ledger.find_credit_document(paid)
        # amount due: allocation, then cash for the rest; with a crash after the allocation and a retry
        partly = _booking(invoice(("Bookshelf", 1, "200.00"), paid="150.00"), 12000)
        sim.add_fault(FaultRule(method="PUT", path="/Allocations$", status=502, when="after"))
        with pytest.raises(TransientError):
            ledger.record_refund(partly)
        ledger.record_refund(partly)
        # line-level partial refund of an unpaid invoice
        lines = [
            RefundLine(description="Desk lamp", quantity=2, amount=Money.of(7900, "USD")),
            RefundLine(description="Plug", quantity=3, amount=Money.of(1000, "USD")),
        ]
        ledger.record_refund(_booking(invoice(("Desk lamp", 2, "39.50"), ("Plug", 3, "3.34")), 8900, lines))
        # revoked access token: 401, refresh, repeat; then a rate limit
        sim.revoke_access_tokens()
        ledger.record_refund(_booking(invoice(("Chair", 1, "80.00"), paid=True), 8000))
        sim.add_fault(FaultRule(method="GET", path="/Invoices/", status=429, headers={"Retry-After": "1"}, body={}))
        rate_limited = _booking(invoice(("Stool", 1, "20.00"), paid=True), 2000)
        with pytest.raises(TransientError):
            ledger.record_refund(rate_limited)
        ledger.record_refund(rate_limited)

        seen = requests.get(f"{url}/_control/requests", timeout=5).json()["requests"]
        yield sim, url, seen


def _as_xero_request(seen: dict[str, Any]) -> RequestsOpenAPIRequest:
    """The recorded request as it would have gone to api.xero.com."""
    query = f"?{seen['query']}" if seen["query"] else ""
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    body = seen["body"].encode() if seen["body"] else None
    return RequestsOpenAPIRequest(
        requests.Request(seen["method"], f"{XERO_SERVER}{seen['path']}{query}", headers=headers, data=body)
    )


def _accounting(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [request for request in seen if request["path"].startswith(ACCOUNTING)]


def _endpoint(path: str) -> str:
    """``/api.xro/2.0/CreditNotes/<id>/Allocations`` -> ``CreditNotes/Allocations``."""
    parts = path[len(ACCOUNTING) :].split("/")
    return parts[0] + ("/Allocations" if parts[-1] == "Allocations" else "")


def _header(request: dict[str, Any], name: str) -> str | None:
    return next((value for key, value in request["headers"].items() if key.lower() == name.lower()), None)


def test_scenarios_exercised_every_call_the_connector_makes(
    recorded: tuple[XeroSimulator, str, list[dict[str, Any]]],
) -> None:
    # GIVEN the requests recorded while driving the scenarios
    _, _, seen = recorded

    # WHEN they are grouped by method and endpoint
    kinds = {
        (
            request["method"],
            request["path"].split("/")[3] + ("/Allocations" if "Allocations" in request["path"] else ""),
        )
        for request in _accounting(seen)
    }

    # THEN every read and write of the flow is among them, so the validation below covers them all
    assert kinds == {
        ("GET", "Invoices"),
        ("GET", "CreditNotes"),
        ("PUT", "CreditNotes"),
        ("PUT", "CreditNotes/Allocations"),
        ("PUT", "Payments"),
    }


def test_every_accounting_request_is_valid_against_xeros_openapi_spec(
    recorded: tuple[XeroSimulator, str, list[dict[str, Any]]], xero_spec: OpenAPI
) -> None:
    # GIVEN every accounting request the connector sent in the scenarios
    _, _, seen = recorded
    requests_sent = _accounting(seen)
    assert len(requests_sent) > 20

    # WHEN each is validated against the official spec at Xero's server URL
    failures = []
    for request in requests_sent:
        try:
            xero_spec.validate_request(_as_xero_request(request))
        except Exception as error:
            failures.append(f"{request['method']} {request['path']}: {error}")

    # THEN none breaks the contract
    assert failures == []


def test_every_accounting_request_carries_bearer_tenant_and_accept_headers(
    recorded: tuple[XeroSimulator, str, list[dict[str, Any]]],
) -> None:
    # GIVEN every accounting request / THEN each has the bearer token, the tenant and asks for JSON
    _, _, seen = recorded
    for request in _accounting(seen):
        assert (_header(request, "Authorization") or "").startswith("Bearer ")
        assert _header(request, "xero-tenant-id") == DEFAULT_TENANT_ID
        assert _header(request, "Accept") == "application/json"


def test_every_create_carries_a_derived_idempotency_key_within_xeros_limit(
    recorded: tuple[XeroSimulator, str, list[dict[str, Any]]],
) -> None:
    # GIVEN every write the connector sent
    _, _, seen = recorded
    writes = [request for request in _accounting(seen) if request["method"] in {"PUT", "POST"}]
    assert writes

    # THEN each has an Idempotency-Key of at most 128 characters, derived from the refund id and the operation
    for request in writes:
        key = _header(request, "Idempotency-Key") or ""
        operation = next(op for suffix, op in KEY_OPERATIONS.items() if request["path"].endswith(suffix))
        refund_id = key.split(":")[0]
        assert 0 < len(key) <= 128
        assert key == idempotency_key(refund_id, operation, max_length=128)
    # AND reads never carry one
    assert all(
        _header(request, "Idempotency-Key") is None for request in _accounting(seen) if request["method"] == "GET"
    )


def test_every_amount_in_a_request_body_is_a_json_number(
    recorded: tuple[XeroSimulator, str, list[dict[str, Any]]],
) -> None:
    # GIVEN the bodies of every write
    _, _, seen = recorded

    def amounts(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict):
            for name, item in value.items():
                yield from amounts(item, name)
        elif isinstance(value, list):
            for item in value:
                yield from amounts(item, key)
        elif key in {"Amount", "UnitAmount", "Quantity"}:
            yield key, value

    found = [pair for request in _accounting(seen) if request["body"] for pair in amounts(json.loads(request["body"]))]

    # THEN every amount is a number (never a string), with at most two decimals in the JSON text
    assert found
    assert all(isinstance(value, int | float) and not isinstance(value, bool) for _, value in found)
    for request in _accounting(seen):
        for token in request["body"].replace("{", ",").replace("}", ",").replace("[", ",").split(","):
            if token.startswith(('"Amount":', '"UnitAmount":')):
                number = token.split(":", 1)[1]
                assert "." not in number or len(number.split(".")[1]) <= 2, number


def test_token_refreshes_use_xeros_documented_form(recorded: tuple[XeroSimulator, str, list[dict[str, Any]]]) -> None:
    # GIVEN the identity calls (initial token and the refresh after the 401)
    _, _, seen = recorded
    identity = [request for request in seen if request["path"] == IDENTITY_TOKEN_PATH]
    assert len(identity) == 2

    for request in identity:
        # THEN each is a form POST with the refresh-token grant and the client as HTTP Basic
        form = parse_qs(request["body"], strict_parsing=True)
        assert request["method"] == "POST"
        assert (_header(request, "Content-Type") or "").startswith("application/x-www-form-urlencoded")
        assert set(form) <= IDENTITY_FORM_FIELDS
        assert form["grant_type"] == ["refresh_token"]
        assert len(form["refresh_token"]) == 1
        assert form["refresh_token"][0]
        scheme, _, credentials = (_header(request, "Authorization") or "").partition(" ")
        assert scheme == "Basic"
        assert base64.b64decode(credentials).decode() == f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}"
    # AND the second refresh presented the token the first one rotated to
    first, second = (parse_qs(request["body"])["refresh_token"][0] for request in identity)
    assert first == DEFAULT_REFRESH_TOKEN
    assert second != first


def test_simulator_answers_to_the_connectors_reads_match_the_spec(
    recorded: tuple[XeroSimulator, str, list[dict[str, Any]]], xero_spec: OpenAPI
) -> None:
    # GIVEN the reads the connector made, replayed against the simulator with a fresh token
    sim, url, seen = recorded
    token = requests.post(
        f"{url}{IDENTITY_TOKEN_PATH}",
        data={"grant_type": "refresh_token", "refresh_token": sim.current_refresh_token},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        timeout=5,
    ).json()["access_token"]
    reads = {(request["path"], request["query"]) for request in _accounting(seen) if request["method"] == "GET"}

    failures = []
    for path, query in sorted(reads):
        answer = requests.get(
            f"{url}{path}{'?' + query if query else ''}",
            headers={"Authorization": f"Bearer {token}", "xero-tenant-id": DEFAULT_TENANT_ID},
            timeout=5,
        )
        # WHEN each answer is validated as Xero's answer to that request
        request = requests.Request(
            "GET", f"{XERO_SERVER}{path}{'?' + query if query else ''}", headers={"xero-tenant-id": DEFAULT_TENANT_ID}
        )
        try:
            xero_spec.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer))
        except Exception as error:
            failures.append(f"{path}: {error}")

    # THEN the simulator speaks the spec's shapes too
    assert failures == []


def test_validator_rejects_a_wrong_enum_and_a_missing_tenant(
    recorded: tuple[XeroSimulator, str, list[dict[str, Any]]], xero_spec: OpenAPI
) -> None:
    # GIVEN a real credit-note create from the scenarios
    _, _, seen = recorded
    create = next(r for r in _accounting(seen) if r["method"] == "PUT" and r["path"].endswith("/CreditNotes"))
    xero_spec.validate_request(_as_xero_request(create))

    # WHEN its Type is changed to a value Xero does not have, or the tenant header is dropped
    wrong_type = {**create, "body": create["body"].replace('"ACCRECCREDIT"', '"REFUND"')}
    no_tenant = {**create, "headers": {k: v for k, v in create["headers"].items() if k.lower() != "xero-tenant-id"}}

    # THEN the validator refuses both: it is live, not a rubber stamp
    with pytest.raises(InvalidRequestBody, match="REFUND"):
        xero_spec.validate_request(_as_xero_request(wrong_type))
    with pytest.raises(MissingRequiredParameter, match="xero-tenant-id"):
        xero_spec.validate_request(_as_xero_request(no_tenant))
