"""Every request XeroBooks sends, validated against Xero's official OpenAPI spec (xero-accounting.yaml).

The connector is driven against the Xero simulator through the refund scenarios; the simulator records each
request it received, which is rebuilt with Xero's real server URL and validated by openapi-core. The official
spec marks almost nothing required and allows any extra property, so it catches wrong types and enums only:
each write body is also validated against a stricter profile derived here from the same spec (the objects we
send, with the fields we must send required and every other property refused), so a renamed or missing field
fails. And what Xero booked (the simulator's record: dates, lines, tax types, accounts, references, contact,
currency, the allocation to the invoice and the cash refund) is compared with the refund. The identity
endpoint is outside that spec and is checked against Xero's documented refresh-token form fields instead
(``grant_type``, ``refresh_token``, client credentials as HTTP Basic: the ``RefreshToken`` schema of
XeroAPI/Xero-OpenAPI ``xero-identity.yaml`` and developer.xero.com/documentation/guides/oauth2/auth-flow).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema
import pytest
import requests
import yaml
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
from refundflow.errors import TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import (
    BooksSystem,
    CustomerContact,
    InvoiceReference,
    PaymentProvider,
    RefundLine,
    TenderKind,
)
from refundflow.money import Money
from refundflow.platforms.xero.connector import XeroBooks, XeroTokenSource
from refundflow.ports import CreditBooking, CreditLeg
from tests.support.servers import serve_wsgi

XERO_SERVER = "https://api.xero.com"
ACCOUNTING = "/api.xro/2.0/"
IDENTITY_TOKEN_PATH = "/identity/connect/token"
IDENTITY_FORM_FIELDS = {"grant_type", "refresh_token", "client_id", "client_secret"}
KEY_OPERATIONS = {
    "/CreditNotes": "creditnote",
    "/Allocations": "allocation",
    "/Payments": "payment",
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


# ---------------------------------------------------------------- the stricter profile of the official spec

# What refundflow sends, per object: the official schema it is an instance of, its properties (a nested profile
# name, "<name>[]" for a list of them, or None to keep the official property schema), and the ones it must send.
# Everything is taken from the official spec; a property the spec does not have fails the build.
PROFILES: dict[str, tuple[str, dict[str, str | None], set[str]]] = {
    "CreditNotes": ("CreditNotes", {"CreditNotes": "CreditNote[]"}, {"CreditNotes"}),
    "CreditNote": (
        "CreditNote",
        {
            "Type": None,
            "Status": None,
            "Contact": "ContactRef",
            "Date": None,
            "CurrencyCode": None,
            "Reference": None,
            "LineAmountTypes": None,
            "LineItems": "LineItem[]",
        },
        {"Type", "Status", "Contact", "Date", "CurrencyCode", "Reference", "LineAmountTypes", "LineItems"},
    ),
    # TaxType is sent when the invoice's lines share one tax type (else Xero takes the account's, as the
    # invoice did); the booked-document checks below hold the connector to sending it in these scenarios.
    "LineItem": (
        "LineItem",
        {"Description": None, "Quantity": None, "UnitAmount": None, "AccountCode": None, "TaxType": None},
        {"Description", "Quantity", "UnitAmount", "AccountCode"},
    ),
    "ContactRef": ("Contact", {"ContactID": None}, {"ContactID"}),
    "Allocations": ("Allocations", {"Allocations": "Allocation[]"}, {"Allocations"}),
    "Allocation": (
        "Allocation",
        {"Invoice": "InvoiceRef", "Amount": None, "Date": None},
        {"Invoice", "Amount", "Date"},
    ),
    "InvoiceRef": ("Invoice", {"InvoiceID": None}, {"InvoiceID"}),
    "Payments": ("Payments", {"Payments": "Payment[]"}, {"Payments"}),
    "Payment": (
        "Payment",
        {"CreditNote": "CreditNoteRef", "Account": "AccountRef", "Date": None, "Amount": None, "Reference": None},
        {"CreditNote", "Account", "Date", "Amount", "Reference"},
    ),
    "CreditNoteRef": ("CreditNote", {"CreditNoteID": None}, {"CreditNoteID"}),
    "AccountRef": ("Account", {"Code": None}, {"Code"}),
}
# The body of each write, by the path it is sent to.
WRITE_PROFILES = {"/CreditNotes": "CreditNotes", "/Allocations": "Allocations", "/Payments": "Payments"}
# The spec describes every date we send as "YYYY-MM-DD" in words only.
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


@cache
def _spec_document(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


def _inline(schema: Any, components: Mapping[str, Any]) -> Any:
    """The official property schema with its ``$ref``s (enums such as CurrencyCode) resolved in place."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(components[schema["$ref"].rsplit("/", 1)[1]], components)
        return {key: _inline(value, components) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(item, components) for item in schema]
    return copy.deepcopy(schema)


def strict_schema(spec: Mapping[str, Any], profile: str) -> dict[str, Any]:
    """The JSON schema of ``profile``: the official property schemas, the required fields, no other property."""
    components = spec["components"]["schemas"]
    official_name, properties, required = PROFILES[profile]
    official = components[official_name]["properties"]
    built: dict[str, Any] = {}
    for name, nested in properties.items():
        assert name in official, f"the official {official_name} has no property {name}"
        if nested is None:
            built[name] = _inline(official[name], components)
            if name == "Date":
                built[name]["pattern"] = ISO_DATE
        elif nested.endswith("[]"):
            built[name] = {"type": "array", "minItems": 1, "items": strict_schema(spec, nested[:-2])}
        else:
            built[name] = strict_schema(spec, nested)
    return {"type": "object", "properties": built, "required": sorted(required), "additionalProperties": False}


@pytest.fixture
def strict_profiles(contracts_dir: Path) -> dict[str, jsonschema.Draft7Validator]:
    spec = _spec_document(str(contracts_dir / "xero-accounting.yaml"))
    return {
        suffix: jsonschema.Draft7Validator(strict_schema(spec, profile)) for suffix, profile in WRITE_PROFILES.items()
    }


def _profile_errors(validator: jsonschema.Draft7Validator, body: Any) -> list[str]:
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<body>'}: {error.message}"
        for error in validator.iter_errors(body)
    ]


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


@dataclass(frozen=True)
class Expected:
    """What one scenario's refund must have booked in Xero."""

    booking: CreditBooking
    invoice_id: str
    invoice_number: str
    contact_id: str
    allocated: Decimal
    cash: Decimal
    lines: list[tuple[str, Decimal]]


@dataclass(frozen=True)
class Recorded:
    sim: XeroSimulator
    url: str
    seen: list[dict[str, Any]]
    expected: list[Expected]


def _booking(invoice_id: str, minor: int, lines: list[RefundLine] | None = None) -> CreditBooking:
    booking_id = derive_refund_id("contract", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=booking_id,
        invoice=InvoiceReference(system=BooksSystem.XERO, invoice_id=invoice_id),
        amount=Money.of(minor, "USD"),
        lines=lines or [],
        customer=CustomerContact(email="ada@example.com"),
        booking_date=date(2026, 5, 1),
        reference="RMA-2001",
        payment_provider=PaymentProvider.STRIPE,
        idempotency_key=idempotency_key(booking_id, "books"),
        external_reference=booking_id,
    )


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    """Drive the connector through the refund scenarios once; yield every request the simulator received and
    what each refund must have booked."""
    sim = XeroSimulator()
    with serve_wsgi(sim) as url:
        store = Store()
        tokens = XeroTokenSource(
            identity_base=f"{url}/identity",
            load_secret=store.load,
            save_secret=store.save,
            http=HttpClient(platform="xero", base_url=f"{url}/identity", timeout=(2.0, 5.0)),
        )
        books = XeroBooks(
            tokens=tokens,
            api_base=f"{url}/api.xro/2.0",
            http=HttpClient(platform="xero", base_url=f"{url}/api.xro/2.0", timeout=(2.0, 5.0)),
        )
        contact = sim.add_contact("Contract Customer", "contract@example.com")
        contact_id = str(contact["ContactID"])
        numbers: dict[str, str] = {}
        expected: list[Expected] = []

        def invoice(*lines: tuple[str, int, str], paid: Any = None) -> str:
            created = sim.add_invoice(contact_id, [(*line, "200", "OUTPUT2") for line in lines])
            if paid is not None:
                sim.pay_invoice(created["InvoiceID"], None if paid is True else paid)
            numbers[str(created["InvoiceID"])] = str(created["InvoiceNumber"])
            return str(created["InvoiceID"])

        def expect(booking: CreditBooking, allocated: str, cash: str, *lines: tuple[str, str]) -> CreditBooking:
            invoice_id = booking.invoice.invoice_id
            line_amounts = [(text, Decimal(amount)) for text, amount in lines]
            expected.append(
                Expected(
                    booking,
                    invoice_id,
                    numbers[invoice_id],
                    contact_id,
                    Decimal(allocated),
                    Decimal(cash),
                    line_amounts,
                )
            )
            return booking

        # paid invoice: credit note + cash refund
        paid = _booking(invoice(("Walnut desk", 1, "249.00"), paid=True), 24900)
        expect(paid, "0", "249.00", ("Refund RMA-2001", "249.00"))
        assert books.find_credit_document(paid) is None
        books.record_credit(paid)
        books.find_credit_document(paid)
        # amount due: allocation, then cash for the rest; with a crash after the allocation and a retry
        partly = _booking(invoice(("Bookshelf", 1, "200.00"), paid="150.00"), 12000)
        expect(partly, "50.00", "70.00", ("Refund RMA-2001", "120.00"))
        sim.add_fault(FaultRule(method="PUT", path="/Allocations$", status=502, when="after"))
        with pytest.raises(TransientError):
            books.record_credit(partly)
        books.record_credit(partly)
        # line-level partial refund of an unpaid invoice: all of it allocated, nothing paid out
        lines = [
            RefundLine(description="Desk lamp", quantity=2, amount=Money.of(7900, "USD")),
            RefundLine(description="Plug", quantity=3, amount=Money.of(1000, "USD")),
        ]
        unpaid = _booking(invoice(("Desk lamp", 2, "39.50"), ("Plug", 3, "3.34")), 8900, lines)
        books.record_credit(expect(unpaid, "89.00", "0", ("Desk lamp", "79.00"), ("Plug", "10.00")))
        # revoked access token: 401, refresh, repeat; then a rate limit
        sim.revoke_access_tokens()
        books.record_credit(
            expect(_booking(invoice(("Chair", 1, "80.00"), paid=True), 8000), "0", "80.00", ("Refund", "80.00"))
        )
        sim.add_fault(FaultRule(method="GET", path="/Invoices/", status=429, headers={"Retry-After": "1"}, body={}))
        rate_limited = expect(
            _booking(invoice(("Stool", 1, "20.00"), paid=True), 2000), "0", "20.00", ("Refund", "20.00")
        )
        with pytest.raises(TransientError):
            books.record_credit(rate_limited)
        books.record_credit(rate_limited)
        # a split-tender refund: a payment per cash leg (each naming its leg), the store credit left on the note;
        # its requests are validated with the others
        split = _booking(invoice(("Sofa", 1, "25.00"), paid=True), 2500)
        legs = [
            CreditLeg(
                index=0,
                kind=TenderKind.CARD,
                payment_provider=PaymentProvider.STRIPE,
                amount=Money.of(1500, "USD"),
                provider_refund_id="re_contract_1",
            ),
            CreditLeg(index=1, kind=TenderKind.STORE_CREDIT, payment_provider=None, amount=Money.of(1000, "USD")),
        ]
        books.record_credit(split.model_copy(update={"legs": legs}))

        seen = requests.get(f"{url}/_control/requests", timeout=5).json()["requests"]
        yield Recorded(sim, url, seen, expected)


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
    recorded: Recorded,
) -> None:
    # GIVEN the requests recorded while driving the scenarios
    seen = recorded.seen

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


def test_every_accounting_request_is_valid_against_xeros_openapi_spec(recorded: Recorded, xero_spec: OpenAPI) -> None:
    # GIVEN every accounting request the connector sent in the scenarios
    seen = recorded.seen
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
    recorded: Recorded,
) -> None:
    # GIVEN every accounting request / THEN each has the bearer token, the tenant and asks for JSON
    seen = recorded.seen
    for request in _accounting(seen):
        assert (_header(request, "Authorization") or "").startswith("Bearer ")
        assert _header(request, "xero-tenant-id") == DEFAULT_TENANT_ID
        assert _header(request, "Accept") == "application/json"


def test_every_create_carries_a_derived_idempotency_key_within_xeros_limit(
    recorded: Recorded,
) -> None:
    # GIVEN every write the connector sent
    seen = recorded.seen
    writes = [request for request in _accounting(seen) if request["method"] in {"PUT", "POST"}]
    assert writes

    # THEN each has an Idempotency-Key of at most 128 characters: the booking's key (from the refund id) and the step
    for request in writes:
        key = _header(request, "Idempotency-Key") or ""
        operation = next(op for suffix, op in KEY_OPERATIONS.items() if request["path"].endswith(suffix))
        refund_id = key.split(":")[0]
        assert 0 < len(key) <= 128
        # a split refund's payment of cash leg N: ``payment-N``
        step = key.rsplit(":", 1)[-1]
        assert step == operation or (operation == "payment" and re.fullmatch(r"payment-\d{1,2}", step)), key
        assert key == f"{idempotency_key(refund_id, 'books')}:{step}"
    # AND reads never carry one
    assert all(
        _header(request, "Idempotency-Key") is None for request in _accounting(seen) if request["method"] == "GET"
    )


def test_every_amount_in_a_request_body_is_a_json_number(
    recorded: Recorded,
) -> None:
    # GIVEN the bodies of every write
    seen = recorded.seen

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


def test_token_refreshes_use_xeros_documented_form(recorded: Recorded) -> None:
    # GIVEN the identity calls (initial token and the refresh after the 401)
    seen = recorded.seen
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


def test_simulator_answers_to_the_connectors_reads_match_the_spec(recorded: Recorded, xero_spec: OpenAPI) -> None:
    # GIVEN the reads the connector made, replayed against the simulator with a fresh token
    sim, url, seen = recorded.sim, recorded.url, recorded.seen
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


def test_validator_rejects_a_wrong_enum_and_a_missing_tenant(recorded: Recorded, xero_spec: OpenAPI) -> None:
    # GIVEN a real credit-note create from the scenarios
    seen = recorded.seen
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


def _writes(seen: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(endpoint suffix, parsed body) of every write the connector sent."""
    found = []
    for request in _accounting(seen):
        if request["method"] in {"PUT", "POST"}:
            suffix = next(suffix for suffix in WRITE_PROFILES if request["path"].endswith(suffix))
            found.append((suffix, json.loads(request["body"])))
    return found


def test_every_write_fits_the_strict_profile_of_the_spec(
    recorded: Recorded, strict_profiles: dict[str, jsonschema.Draft7Validator]
) -> None:
    # GIVEN every credit note, allocation and payment the connector sent in the scenarios
    writes = _writes(recorded.seen)
    assert {suffix for suffix, _ in writes} == set(WRITE_PROFILES)

    # WHEN each body is validated against its strict profile (required fields, no unknown property)
    failures = [
        f"{suffix}: {problem}" for suffix, body in writes for problem in _profile_errors(strict_profiles[suffix], body)
    ]

    # THEN every field we must send is there, under its official name, and nothing else is
    assert failures == []


@pytest.mark.parametrize(
    ("suffix", "path", "change", "complaint"),
    [
        ("/CreditNotes", ("CreditNotes", 0), ("rename", "Date", "Dat"), "'Dat' was unexpected"),
        ("/CreditNotes", ("CreditNotes", 0), ("drop", "Date", None), "'Date' is a required property"),
        ("/CreditNotes", ("CreditNotes", 0), ("rename", "Reference", "Ref"), "'Ref' was unexpected"),
        ("/CreditNotes", ("CreditNotes", 0, "LineItems", 0), ("rename", "TaxType", "Tax"), "'Tax' was unexpected"),
        ("/CreditNotes", ("CreditNotes", 0), ("set", "Date", "01/05/2026"), "does not match"),
        ("/CreditNotes", ("CreditNotes", 0), ("set", "CurrencyCode", "XXX"), "is not one of"),
        ("/Allocations", ("Allocations", 0), ("drop", "Date", None), "'Date' is a required property"),
        ("/Payments", ("Payments", 0), ("rename", "Reference", "Note"), "'Note' was unexpected"),
        ("/Payments", ("Payments", 0, "Account"), ("rename", "Code", "AccountCode"), "'AccountCode' was unexpected"),
    ],
    ids=[
        "date-renamed",
        "date-missing",
        "reference-renamed",
        "line-taxtype-renamed",
        "date-not-iso",
        "unknown-currency",
        "allocation-date-missing",
        "payment-reference-renamed",
        "payment-account-code-renamed",
    ],
)
def test_strict_profile_refuses_renamed_missing_and_unknown_fields(
    recorded: Recorded,
    strict_profiles: dict[str, jsonschema.Draft7Validator],
    suffix: str,
    path: tuple[str | int, ...],
    change: tuple[str, str, str | None],
    complaint: str,
) -> None:
    # GIVEN a real body the connector sent, which fits the profile
    body = next(body for sent, body in _writes(recorded.seen) if sent == suffix)
    assert _profile_errors(strict_profiles[suffix], body) == []
    # WHEN one field is renamed, dropped or given a value Xero does not have
    mutated = copy.deepcopy(body)
    target: Any = mutated
    for part in path:
        target = target[part]
    action, name, value = change
    if action == "rename":
        target[value] = target.pop(name)
    elif action == "drop":
        del target[name]
    else:
        target[name] = value
    # THEN the profile refuses it, naming the field: it is live, not a rubber stamp
    problems = _profile_errors(strict_profiles[suffix], mutated)
    assert any(complaint in problem for problem in problems), problems


def test_what_xero_booked_is_what_each_refund_says(recorded: Recorded) -> None:
    # GIVEN what the simulator booked, as Xero would hold it, for each scenario's refund
    booked = {note["Reference"].split(" ", 1)[0]: note for note in recorded.sim.booked()}
    assert len(booked) == len(recorded.expected) + 1  # and the split refund's (its requests are checked above)

    for expected in recorded.expected:
        booking = expected.booking
        note = booked[booking.refund_id]
        where = f"{booking.refund_id} ({expected.invoice_number})"
        # THEN the credit note is the refund's: dated the booking day, for the invoice's customer, in its currency,
        # gross (inclusive) lines on the refund account with the invoice's tax type, and our reference
        assert (note["Type"], note["Date"], note["Contact"], note["CurrencyCode"]) == (
            "ACCRECCREDIT",
            booking.booking_date.isoformat(),
            expected.contact_id,
            booking.amount.currency,
        ), where
        assert note["LineAmountTypes"] == "Inclusive", where
        assert note["Reference"] == f"{booking.refund_id} refund of {expected.invoice_number}", where
        assert Decimal(str(note["Total"])) == booking.amount.to_decimal(), where
        assert len(note["LineItems"]) == len(expected.lines), where
        for line, (description, amount) in zip(note["LineItems"], expected.lines, strict=True):
            assert str(line["Description"]).startswith(description), where
            assert (line["AccountCode"], line["TaxType"]) == ("200", "OUTPUT2"), where
            assert Decimal(str(line["LineAmount"])) == amount, where
        # AND it is linked to the invoice by an allocation of what the invoice still owed, on the booking day
        allocations = [(item["Invoice"], Decimal(str(item["Amount"])), item["Date"]) for item in note["Allocations"]]
        expected_allocations = (
            [(expected.invoice_id, expected.allocated, booking.booking_date.isoformat())] if expected.allocated else []
        )
        assert allocations == expected_allocations, where
        # AND what remains is paid back from the payment account once, under the credit note's reference
        payments = [
            (item["Account"], Decimal(str(item["Amount"])), item["Date"], item["Reference"])
            for item in note["Payments"]
        ]
        expected_payments = (
            [("090", expected.cash, booking.booking_date.isoformat(), note["Reference"])] if expected.cash else []
        )
        assert payments == expected_payments, where
        # AND Xero filled in nothing and dropped nothing: every field was sent, under its own name
        assert (note["defaulted"], note["ignored"]) == ([], []), where
        for item in [*note["Allocations"], *note["Payments"]]:
            assert (item["defaulted"], item["ignored"]) == ([], []), where
