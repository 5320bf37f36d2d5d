"""The Dynamics 365 Customer Service simulator is as strict as Entra ID and the Dataverse Web API it stands for, and
its flow delivers the way the README's Power Automate flow does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from local.simulators.dynamics_cs import DynamicsCaseSimulator
from tests.support.servers import DeliveryRecorder, serve_wsgi

API = "/api/data/v9.2"


@pytest.fixture
def desk() -> Iterator[tuple[DynamicsCaseSimulator, str]]:
    simulator = DynamicsCaseSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def token(simulator: DynamicsCaseSimulator, url: str, **changes: str) -> requests.Response:
    """A client-credentials grant as the connector sends it, with ``changes`` to its form."""
    origin = urlsplit(url)
    form = {
        "grant_type": "client_credentials",
        "client_id": simulator.client_id,
        "client_secret": simulator.client_secret,
        "scope": f"{origin.scheme}://{origin.netloc}/.default",
        **changes,
    }
    return requests.post(f"{url}/login/{simulator.tenant_id}/oauth2/v2.0/token", data=form, timeout=5)


def bearer(simulator: DynamicsCaseSimulator, url: str) -> dict[str, str]:
    answer = token(simulator, url)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def seed(simulator: DynamicsCaseSimulator) -> str:
    return simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "agent"})


def error_of(answer: requests.Response) -> tuple[int, str]:
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return answer.status_code, body["error"]["code"]


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"client_secret": "wrong-secret-000000000000"}, 401, "invalid_client"),
        ({"client_id": str(uuid.uuid4())}, 400, "unauthorized_client"),
        ({"scope": "https://other.crm.dynamics.com/.default"}, 400, "invalid_scope"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_the_token_endpoint_refuses_what_entra_id_refuses(
    desk: Any, changes: dict[str, str], status: int, error: str
) -> None:
    simulator, url = desk
    answer = token(simulator, url, **changes)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["error_description"].startswith("AADSTS")
    assert simulator.token_grants == 0


def test_the_api_refuses_a_call_without_a_valid_token(desk: Any) -> None:
    simulator, url = desk
    case = seed(simulator)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = requests.get(f"{url}{API}/incidents({case})", headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_unknown_columns_rows_and_segments_are_refused_in_dataverses_shape(desk: Any) -> None:
    simulator, url = desk
    headers = bearer(simulator, url)
    case = seed(simulator)
    unknown_column = requests.get(
        f"{url}{API}/incidents({case})", params={"$select": "title,nosuch"}, headers=headers, timeout=5
    )
    assert error_of(unknown_column) == (400, "0x0")
    assert "nosuch" in unknown_column.json()["error"]["message"]
    unknown_row = requests.get(f"{url}{API}/incidents({uuid.uuid4()})", headers=headers, timeout=5)
    assert error_of(unknown_row) == (404, "0x80040217")
    wrong_segment = requests.get(f"{url}{API}/Incidents({case})", headers=headers, timeout=5)
    assert error_of(wrong_segment) == (404, "0x8006088a")


def test_a_patch_without_if_match_or_with_an_unknown_column_changes_nothing(desk: Any) -> None:
    simulator, url = desk
    headers = bearer(simulator, url)
    case = seed(simulator)
    path = f"{url}{API}/incidents({case})"
    upsert = requests.patch(path, json={"new_refundstatus": "issued"}, headers=headers, timeout=5)
    assert error_of(upsert)[0] == 400
    unknown = requests.patch(path, json={"statecode": 1}, headers={**headers, "If-Match": "*"}, timeout=5)
    assert error_of(unknown) == (400, "0x0")
    assert simulator.cases[case]["new_refundstatus"] is None
    assert simulator.cases[case]["statecode"] == 0


def test_a_resolved_case_is_read_only(desk: Any) -> None:
    simulator, url = desk
    headers = {**bearer(simulator, url), "If-Match": "*"}
    case = seed(simulator)
    simulator.agent_action(case, "approve")
    answer = requests.patch(
        f"{url}{API}/incidents({case})", json={"new_refundstatus": "issued"}, headers=headers, timeout=5
    )
    assert error_of(answer) == (400, "0x800404cf")
    assert simulator.cases[case]["new_refundstatus"] is None


def test_a_note_must_name_a_known_case_and_only_its_own_columns(desk: Any) -> None:
    simulator, url = desk
    headers = bearer(simulator, url)
    case = seed(simulator)
    bad = [
        {"subject": "x", "notetext": "y"},
        {"notetext": "y", "objectid_incident@odata.bind": f"/incidents({case})", "body": "z"},
        {"notetext": 5, "objectid_incident@odata.bind": f"/incidents({case})"},
    ]
    for body in bad:
        assert error_of(requests.post(f"{url}{API}/annotations", json=body, headers=headers, timeout=5))[0] == 400
    unknown = {"notetext": "y", "objectid_incident@odata.bind": f"/incidents({uuid.uuid4()})"}
    assert error_of(requests.post(f"{url}{API}/annotations", json=unknown, headers=headers, timeout=5))[0] == 404
    good = {"notetext": "y", "objectid_incident@odata.bind": f"/incidents({case})"}
    created = requests.post(f"{url}{API}/annotations", json=good, headers=headers, timeout=5)
    assert created.status_code == 204
    assert "/annotations(" in created.headers["OData-EntityId"]
    assert [note["notetext"] for note in simulator.notes[case]] == ["y"]


def test_the_service_protection_limit_answers_429_with_retry_after(desk: Any) -> None:
    simulator, url = desk
    headers = bearer(simulator, url)
    case = seed(simulator)
    simulator.requests_per_window = 1
    assert requests.get(f"{url}{API}/incidents({case})", headers=headers, timeout=5).status_code == 200
    limited = requests.get(f"{url}{API}/incidents({case})", headers=headers, timeout=5)
    assert error_of(limited) == (429, "0x80072322")
    assert int(limited.headers["Retry-After"]) > 0


def test_the_flow_delivers_each_change_with_its_secret_header() -> None:
    receiver = DeliveryRecorder()
    simulator = DynamicsCaseSimulator(webhook_secret="flow-secret-for-the-simulator-test-01")
    with serve_wsgi(receiver) as receiver_url:
        simulator.send_webhooks_to(receiver_url)
        case = seed(simulator)
        simulator.agent_action(case, "request")
        simulator.agent_action(case, "approve")
        simulator.agent_action(case, "withdraw")
        receiver.wait_until(lambda deliveries: len(deliveries) == 3)
    bodies = [json.loads(body) for _, body in receiver.deliveries]
    assert [(body["statecode"], body["new_refundaction"]) for body in bodies] == [
        (0, 100000000),
        (1, 100000001),
        (0, 100000002),  # the agent reactivated the resolved case to withdraw
    ]
    assert all(body["incidentid"] == case for body in bodies)
    assert all(headers.get("X-Refundflow-Secret") == simulator.webhook_secret for headers, _ in receiver.deliveries)


def test_an_unknown_intent_or_role_is_refused(desk: Any) -> None:
    simulator, _ = desk
    with pytest.raises(ValueError, match="intent"):
        simulator.agent_action(seed(simulator), "escalate")
    with pytest.raises(ValueError, match="approver_role"):
        simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "ceo"})


def test_only_the_modelled_expand_and_filter_are_taken(desk: Any) -> None:
    simulator, url = desk
    headers = bearer(simulator, url)
    case = seed(simulator)
    expand = requests.get(f"{url}{API}/incidents({case})", params={"$expand": "owninguser"}, headers=headers, timeout=5)
    assert error_of(expand) == (400, "0x0")
    notes = requests.get(f"{url}{API}/annotations", params={"$filter": "subject eq 'x'"}, headers=headers, timeout=5)
    assert error_of(notes)[0] == 400
    paged = requests.get(
        f"{url}{API}/annotations",
        params={"$filter": f"_objectid_value eq {case}"},
        headers={**headers, "Prefer": "odata.maxpagesize=10"},
        timeout=5,
    )
    assert paged.status_code == 200
    assert paged.json()["value"] == []
    assert paged.headers["Preference-Applied"] == "odata.maxpagesize=10"
