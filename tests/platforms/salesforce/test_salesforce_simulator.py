"""The Salesforce simulator is as strict as an org: auth, versions, unknown fields and ids, restricted picklists,
the composite call's all-or-none, the API allowance, its error bodies and its Flow callouts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.salesforce import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ORGANIZATION_ID,
    SECRET_HEADER,
    SalesforceSimulator,
    checksum,
)
from tests.support.servers import DeliveryRecorder, serve_wsgi

V = "/services/data/v67.0"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SalesforceSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = SalesforceSimulator()
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def org(served: tuple[SalesforceSimulator, str, DeliveryRecorder]) -> tuple[SalesforceSimulator, str]:
    simulator, url, receiver = served
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return simulator, url


def token(url: str) -> str:
    answer = requests.post(
        f"{url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
        timeout=5,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert "expires_in" not in body
    assert body["token_type"] == "Bearer"
    return str(body["access_token"])


def call(url: str, method: str, path: str, body: Any = None, **params: str) -> requests.Response:
    return requests.request(
        method,
        f"{url}{path}",
        json=body,
        params=params,
        headers={"Authorization": f"Bearer {token(url)}"},
        timeout=5,
    )


def seed(simulator: SalesforceSimulator) -> str:
    return simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "agent"})


def error_code(answer: requests.Response) -> str:
    body = answer.json()
    assert isinstance(body, list)
    assert set(body[0]) <= {"message", "errorCode", "fields"}
    return str(body[0]["errorCode"])


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {"grant_type": "password", "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET},
            "unsupported_grant_type",
        ),
        (
            {"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID, "client_secret": "wrong"},
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "other", "client_secret": DEFAULT_CLIENT_SECRET},
            "invalid_client",
        ),
    ],
)
def test_the_token_endpoint_refuses_other_grants_and_clients(org: Any, form: dict[str, str], error: str) -> None:
    _, url = org
    answer = requests.post(f"{url}/services/oauth2/token", data=form, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"] == error


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic abc"])
def test_an_api_call_without_a_live_token_is_invalid_session(org: Any, authorization: str | None) -> None:
    simulator, url = org
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.get(f"{url}{V}/sobjects/Case/{seed(simulator)}", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert error_code(answer) == "INVALID_SESSION_ID"


def test_a_token_ends_with_the_session(org: Any) -> None:
    simulator, url = org
    live = token(url)
    case_id = seed(simulator)
    headers = {"Authorization": f"Bearer {live}"}
    assert requests.get(f"{url}{V}/sobjects/Case/{case_id}", headers=headers, timeout=5).status_code == 200
    simulator.tokens[live] = 0.0  # the session timed out
    assert requests.get(f"{url}{V}/sobjects/Case/{case_id}", headers=headers, timeout=5).status_code == 401


@pytest.mark.parametrize("version", ["v30.0", "v99.0", "vlatest"])
def test_an_unknown_api_version_is_not_found(org: Any, version: str) -> None:
    simulator, url = org
    answer = call(url, "GET", f"/services/data/{version}/sobjects/Case/{seed(simulator)}")
    assert answer.status_code == 404
    assert error_code(answer) == "NOT_FOUND"


def test_every_answer_says_the_api_usage(org: Any) -> None:
    simulator, url = org
    answer = call(url, "GET", f"{V}/sobjects/Case/{seed(simulator)}")
    assert answer.headers["Sforce-Limit-Info"] == f"api-usage=1/{simulator.api_requests_per_day}"


def test_past_the_allowance_the_org_answers_request_limit_exceeded(org: Any) -> None:
    simulator, url = org
    case_id = seed(simulator)
    simulator.api_requests_per_day = 1
    assert call(url, "GET", f"{V}/sobjects/Case/{case_id}").status_code == 200
    answer = call(url, "GET", f"{V}/sobjects/Case/{case_id}")
    assert answer.status_code == 403
    assert error_code(answer) == "REQUEST_LIMIT_EXCEEDED"
    assert "Retry-After" not in answer.headers
    simulator.api_requests_per_day = 15_000


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"Refund_State__c": "issued"}, "INVALID_FIELD"),
        ({"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Refund_Status__c": "refunded_ish"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Status": "Solved"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ],
)
def test_a_case_update_is_held_to_the_orgs_fields(org: Any, body: dict[str, Any], code: str) -> None:
    simulator, url = org
    case_id = seed(simulator)
    before = simulator.ticket_view(case_id)["ticket"]
    answer = call(url, "PATCH", f"{V}/sobjects/Case/{case_id}", body)
    assert answer.status_code == 400
    assert error_code(answer) == code
    after = simulator.ticket_view(case_id)["ticket"]
    assert after == before


def test_a_good_case_update_is_204_and_a_15_character_id_works(org: Any) -> None:
    simulator, url = org
    case_id = seed(simulator)
    answer = call(url, "PATCH", f"{V}/sobjects/Case/{case_id[:15]}", {"Refund_Status__c": "issued"})
    assert answer.status_code == 204
    assert simulator.ticket_view(case_id)["labels"] == ["issued"]


@pytest.mark.parametrize("case_id", ["5005e000009Zz9z", "5005e000001AbCdXYZ", "not-an-id"])
def test_an_unknown_or_malformed_case_is_not_found(org: Any, case_id: str) -> None:
    _, url = org
    answer = call(url, "GET", f"{V}/sobjects/Case/{case_id}")
    assert answer.status_code == 404
    assert error_code(answer) == "NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ParentId": "5005e000009Zz9z", "CommentBody": "x"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"CommentBody": "x"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"ParentId": None, "CommentBody": ""}, "REQUIRED_FIELD_MISSING"),
        ({"ParentId": None, "CommentBody": "x" * 4001}, "STRING_TOO_LONG"),
        ({"ParentId": None, "CommentBody": "x", "Private": True}, "INVALID_FIELD"),
    ],
)
def test_a_comment_is_held_to_the_orgs_rules(org: Any, body: dict[str, Any], code: str) -> None:
    simulator, url = org
    case_id = seed(simulator)
    if "ParentId" in body and body["ParentId"] is None:
        body = {**body, "ParentId": case_id}
    answer = call(url, "POST", f"{V}/sobjects/CaseComment", body)
    assert answer.status_code == 400
    assert error_code(answer) == code
    assert simulator.ticket_view(case_id)["notes"] == []


def test_a_body_that_is_not_json_is_a_parser_error(org: Any) -> None:
    _, url = org
    answer = requests.post(
        f"{url}{V}/sobjects/CaseComment",
        data=b"\xff not json",
        headers={"Authorization": f"Bearer {token(url)}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert error_code(answer) == "JSON_PARSER_ERROR"


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Case",
        "SELECT Id, Secret FROM CaseComment WHERE ParentId = '5005e000009Zz9z'",
        "SELECT Id FROM CaseComment WHERE ParentId = 'x' OR Id != ''",
    ],
)
def test_other_queries_are_refused(org: Any, soql: str) -> None:
    _, url = org
    answer = call(url, "GET", f"{V}/query", q=soql)
    assert answer.status_code == 400
    assert error_code(answer) in {"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_QUERY_FILTER_OPERATOR"}


def test_a_failed_subrequest_rolls_the_composite_back(org: Any) -> None:
    simulator, url = org
    case_id = seed(simulator)
    composite = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/CaseComment",
                "referenceId": "c",
                "body": {"ParentId": case_id, "CommentBody": "hi"},
            },
            {
                "method": "PATCH",
                "url": f"{V}/sobjects/Case/{case_id}",
                "referenceId": "s",
                "body": {"Refund_Status__c": "nope"},
            },
        ],
    }
    answer = call(url, "POST", f"{V}/composite", composite)
    assert answer.status_code == 200
    results = answer.json()["compositeResponse"]
    assert [(result["referenceId"], result["httpStatusCode"]) for result in results] == [("c", 400), ("s", 400)]
    assert results[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert results[1]["body"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert simulator.ticket_view(case_id)["notes"] == []
    assert simulator.api_calls == 1  # the composite call counts once


def test_without_all_or_none_the_good_subrequest_stays(org: Any) -> None:
    simulator, url = org
    case_id = seed(simulator)
    composite = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/CaseComment",
                "referenceId": "c",
                "body": {"ParentId": case_id, "CommentBody": "hi"},
            },
            {"method": "PATCH", "url": f"{V}/sobjects/Case/{case_id}", "referenceId": "s", "body": {"Nope__c": "x"}},
        ],
    }
    results = call(url, "POST", f"{V}/composite", composite).json()["compositeResponse"]
    assert [result["httpStatusCode"] for result in results] == [201, 400]
    assert simulator.ticket_view(case_id)["notes"] == ["hi"]


def test_a_composite_of_more_than_25_is_refused(org: Any) -> None:
    simulator, url = org
    case_id = seed(simulator)
    sub = {"method": "GET", "url": f"{V}/sobjects/Case/{case_id}", "referenceId": "r"}
    answer = call(url, "POST", f"{V}/composite", {"compositeRequest": [sub] * 26})
    assert answer.status_code == 400


def test_the_agents_action_makes_the_flows_callout(org: Any, served: Any) -> None:
    simulator, _ = org
    receiver: DeliveryRecorder = served[2]
    case_id = seed(simulator)
    simulator.agent_action(case_id, "approve")
    receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    headers, body = receiver.deliveries[0]
    lowered = {key.lower(): value for key, value in headers.items()}
    assert lowered[SECRET_HEADER.lower()] == simulator.webhook_secret
    sent = json.loads(body)
    assert sent["caseId"] == case_id
    assert sent["organizationId"] == ORGANIZATION_ID
    assert sent["refundAction"] == "Approved"
    assert simulator.ticket_view(case_id)["ticket"]["LastModifiedById"].startswith("005")


def test_ids_carry_their_checksum(org: Any) -> None:
    simulator, _ = org
    case_id = seed(simulator)
    assert len(case_id) == 18
    assert case_id.startswith("500")
    assert case_id[15:] == checksum(case_id[:15])
    with pytest.raises(KeyError):
        simulator.agent_action(case_id[:15] + "ZZZ", "approve")


def test_a_comment_body_is_limited_in_bytes_not_characters(org: Any) -> None:
    simulator, url = org
    case_id = seed(simulator)
    answer = call(url, "POST", f"{V}/sobjects/CaseComment", {"ParentId": case_id, "CommentBody": "€" * 1334})
    assert answer.status_code == 400
    assert error_code(answer) == "STRING_TOO_LONG"
    assert (
        call(url, "POST", f"{V}/sobjects/CaseComment", {"ParentId": case_id, "CommentBody": "€" * 1333}).status_code
        == 201
    )
