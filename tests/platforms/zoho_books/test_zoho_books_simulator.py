"""The Zoho Books simulator is as strict as Zoho: its token grant, the Zoho-oauthtoken scheme, the organization on
every call, its error bodies, unknown fields refused, and no idempotency (a repeated create books twice)."""

from __future__ import annotations

from typing import Any

import requests

from local.simulators.zoho_books import ZohoBooksSimulator
from tests.platforms.zoho_books.conftest import SecretStore

Served = tuple[ZohoBooksSimulator, str]


def token(url: str, secret: dict[str, Any], **changes: str) -> dict[str, Any]:
    form = {
        "refresh_token": secret["refresh_token"],
        "client_id": secret["client_id"],
        "client_secret": secret["client_secret"],
        "grant_type": "refresh_token",
        **changes,
    }
    answer = requests.post(f"{url}/accounts/oauth/v2/token", params=form, timeout=5)
    assert answer.status_code == 200
    return dict(answer.json())


def test_the_grant_answers_an_hour_long_token_or_zohos_error(served: Served, store: SecretStore) -> None:
    _, url = served
    granted = token(url, store.value)
    assert granted["expires_in"] == 3600
    assert "refresh_token" not in granted  # Zoho's refresh tokens do not rotate
    assert token(url, store.value, refresh_token="1000.other") == {"error": "invalid_code"}
    assert token(url, store.value, client_secret="wrong") == {"error": "invalid_client"}


def test_calls_need_the_zoho_scheme_and_the_organization(served: Served, store: SecretStore) -> None:
    simulator, url = served
    invoice_id = simulator.seed_invoice(1_000, "EUR")
    access = token(url, store.value)["access_token"]
    where = f"{url}/books/v3/invoices/{invoice_id}"
    org = {"organization_id": store.value["organization_id"]}
    bearer = requests.get(where, params=org, headers={"Authorization": f"Bearer {access}"}, timeout=5)
    assert (bearer.status_code, bearer.json()["code"]) == (401, 57)
    zoho = {"Authorization": f"Zoho-oauthtoken {access}"}
    assert requests.get(where, headers=zoho, timeout=5).status_code == 400
    found = requests.get(where, params=org, headers=zoho, timeout=5)
    assert found.json()["invoice"]["balance"] == 10.0
    missing = requests.get(f"{url}/books/v3/invoices/1", params=org, headers=zoho, timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"code": 1002, "message": "Invoice does not exist."})


def test_unknown_fields_are_refused_and_a_repeated_create_books_twice(served: Served, store: SecretStore) -> None:
    simulator, url = served
    invoice = simulator.invoice(simulator.seed_invoice(1_000, "EUR"))
    headers = {"Authorization": f"Zoho-oauthtoken {token(url, store.value)['access_token']}"}
    params = {"organization_id": store.value["organization_id"], "invoice_id": invoice["invoice_id"]}
    body: dict[str, Any] = {
        "customer_id": invoice["customer_id"],
        "date": invoice["date"],
        "reference_number": "rf_x",
        "line_items": [{"description": "Refund", "rate": "5.00", "quantity": 1}],
    }
    misspelt = requests.post(
        f"{url}/books/v3/creditnotes", params=params, json={**body, "referenceNumber": "x"}, headers=headers, timeout=5
    )
    assert (misspelt.status_code, misspelt.json()["code"]) == (400, 2)
    for _ in range(2):
        created = requests.post(f"{url}/books/v3/creditnotes", params=params, json=body, headers=headers, timeout=5)
        assert created.status_code == 201
    assert len([note for note in simulator.documents() if note["reference_number"] == "rf_x"]) == 2
