"""The HubSpot simulator answers as HubSpot's OpenAPI documents say (when they are at hand: contract.py): each call
the connector makes, and the error body, sent to the simulator and its answer validated against the document of its
path as if it came from api.hubapi.com."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.hubspot import DEFAULT_ACCESS_TOKEN, HubSpotSimulator
from tests.platforms.hubspot import contract
from tests.support.servers import serve_wsgi

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")
AUTH = {"Authorization": f"Bearer {DEFAULT_ACCESS_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def served() -> Iterator[tuple[HubSpotSimulator, str]]:
    contract.specs_dir()
    simulator = HubSpotSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def exchange(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Send to the simulator, validate the answer as HubSpot's for the same request to api.hubapi.com."""
    local = requests.Request(method, f"{url}{path}", headers=AUTH, json=body)
    answer = requests.Session().send(local.prepare(), timeout=5)
    as_hubspot = requests.Request(method, f"{contract.SERVER}{path}", headers=AUTH, json=body)
    contract.validate_exchange(as_hubspot, answer)
    return answer.status_code, answer.json()


def test_every_answer_the_connector_reads_is_hubspots_shape(served: tuple[HubSpotSimulator, str]) -> None:
    simulator, url = served
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "amount": "1.00"})
    status, ticket = exchange(
        url, "GET", f"/crm/v3/objects/tickets/{ticket_id}?properties=subject&associations=contacts"
    )
    assert status == 200
    contact_id = ticket["associations"]["contacts"]["results"][0]["id"]
    assert exchange(url, "GET", f"/crm/v3/objects/contacts/{contact_id}?properties=email")[0] == 200
    patch = {"properties": {"refund_status": "issued", "hs_pipeline_stage": "90000004"}}
    assert exchange(url, "PATCH", f"/crm/v3/objects/tickets/{ticket_id}", patch)[0] == 200
    note = {
        "properties": {"hs_timestamp": "2026-12-06T12:00:00.000Z", "hs_note_body": "Refund issued. [refundflow:e]"},
        "associations": [
            {"to": {"id": ticket_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]}
        ],
    }
    status, created = exchange(url, "POST", "/crm/v3/objects/notes", note)
    assert status == 201
    status, listed = exchange(url, "GET", f"/crm/v4/objects/tickets/{ticket_id}/associations/notes?limit=500")
    assert [item["toObjectId"] for item in listed["results"]] == [created["id"]]
    batch = {"inputs": [{"id": created["id"]}], "properties": ["hs_note_body"], "propertiesWithHistory": []}
    status, read = exchange(url, "POST", "/crm/v3/objects/notes/batch/read", batch)
    assert read["results"][0]["properties"]["hs_note_body"].endswith("[refundflow:e]")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/crm/v3/objects/tickets/404404", None, 404),
        ("PATCH", "/crm/v3/objects/tickets/{ticket}", {"properties": {"no_such_property": "x"}}, 400),
        ("POST", "/crm/v3/objects/notes", {"properties": {}, "associations": []}, 400),
    ],
)
def test_errors_are_hubspots_error_body(
    served: tuple[HubSpotSimulator, str], method: str, path: str, body: Any, status: int
) -> None:
    simulator, url = served
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1"})
    answer = requests.request(method, f"{url}{path.format(ticket=ticket_id)}", headers=AUTH, json=body, timeout=5)
    assert answer.status_code == status
    assert contract.error_problems(contract.spec_for(path), answer.json()) == []
    assert answer.json()["status"] == "error"
