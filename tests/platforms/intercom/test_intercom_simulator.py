"""The Intercom simulator is as strict as Intercom: bearer token, API version, defined attributes, admin replies
only by known admins, error lists, its rate limit (X-RateLimit-Reset, no Retry-After); and its control surface."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from local.simulators.intercom import DEFAULT_ACCESS_TOKEN, IntercomSimulator
from tests.support.servers import serve_wsgi

REQUEST = {"payment_provider": "stripe", "payment_id": "pi_3PqIntercom000001", "approver_role": "agent"}
AUTH = {"Authorization": f"Bearer {DEFAULT_ACCESS_TOKEN}", "Intercom-Version": "2.16"}


@pytest.fixture
def url(served: tuple[IntercomSimulator, str], simulator: IntercomSimulator) -> str:
    return served[1]


def call(method: str, url: str, headers: dict[str, str] | None = None, body: Any = None) -> requests.Response:
    return requests.request(method, url, headers=AUTH if headers is None else headers, json=body, timeout=5)


def first_error(answer: requests.Response) -> tuple[int, str]:
    body = answer.json()
    assert body["type"] == "error.list"
    return answer.status_code, body["errors"][0]["code"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {DEFAULT_ACCESS_TOKEN}"}],
    ids=["none", "wrong-token", "not-bearer"],
)
def test_a_request_without_the_token_is_unauthorized(
    url: str, simulator: IntercomSimulator, headers: dict[str, str]
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    assert first_error(call("GET", f"{url}/conversations/{conversation_id}", headers)) == (401, "unauthorized")


def test_an_unknown_api_version_is_refused(url: str, simulator: IntercomSimulator) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    headers = {**AUTH, "Intercom-Version": "3.0"}
    assert first_error(call("GET", f"{url}/conversations/{conversation_id}", headers)) == (400, "parameter_invalid")


def test_an_unknown_conversation_is_intercoms_not_found(url: str) -> None:
    assert first_error(call("GET", f"{url}/conversations/12345")) == (404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"custom_attributes": {"not_defined": "x"}},
        {"custom_attributes": {"refund_status": 3}},
        {"custom_attributes": "refund_status=issued"},
        {"state": "closed"},
        ["custom_attributes"],
    ],
    ids=["undefined-attribute", "wrong-type", "not-an-object", "unknown-field", "not-a-body"],
)
def test_an_update_the_workspace_cannot_take_is_refused_and_changes_nothing(
    url: str, simulator: IntercomSimulator, body: Any
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    before = simulator.ticket_view(conversation_id)["ticket"]
    status, _ = first_error(call("PUT", f"{url}/conversations/{conversation_id}", body=body))
    assert status == 400
    assert simulator.ticket_view(conversation_id)["ticket"] == before


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message_type": "note", "type": "admin", "body": "x"}, (400, "parameter_not_found")),
        ({"message_type": "note", "type": "admin", "admin_id": 991267001, "body": "x"}, (400, "parameter_not_found")),
        ({"message_type": "note", "type": "admin", "admin_id": "991267001"}, (400, "parameter_not_found")),
        ({"message_type": "note", "type": "admin", "admin_id": "1", "body": "x"}, (404, "not_found")),
        ({"message_type": "memo", "type": "admin", "admin_id": "991267001", "body": "x"}, (400, "parameter_invalid")),
        ({"message_type": "comment", "type": "user", "intercom_user_id": "u", "body": "x"}, (400, "parameter_invalid")),
        (
            {"message_type": "note", "type": "admin", "admin_id": "991267001", "body": "x", "internal": True},
            (400, "parameter_invalid"),
        ),
    ],
    ids=["no-admin", "admin-id-number", "no-body", "unknown-admin", "unknown-type", "contact-reply", "unknown-field"],
)
def test_a_reply_intercom_would_refuse_is_refused_and_adds_no_part(
    url: str, simulator: IntercomSimulator, body: dict[str, Any], expected: tuple[int, str]
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    assert first_error(call("POST", f"{url}/conversations/{conversation_id}/reply", body=body)) == expected
    assert simulator.ticket_view(conversation_id)["notes"] == []


def test_a_comment_is_public_and_a_note_is_internal(url: str, simulator: IntercomSimulator) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    for message_type in ("comment", "note"):
        body = {
            "message_type": message_type,
            "type": "admin",
            "admin_id": "991267003",
            "body": f"<p>{message_type}</p>",
        }
        assert call("POST", f"{url}/conversations/{conversation_id}/reply", body=body).status_code == 200
    view = simulator.ticket_view(conversation_id)
    assert (view["public"], view["notes"]) == (["comment"], ["note"])


def test_the_rate_limit_is_counted_per_window_and_answered_with_the_reset_time_and_no_retry_after() -> None:
    # GIVEN a limit of 2 per 10-second window, on a clock the test moves
    clock = [1_800_000_003.0]
    simulator = IntercomSimulator(rate_limit=2, now=lambda: clock[0])
    conversation_id = simulator.seed_ticket(REQUEST)
    with serve_wsgi(simulator) as url:
        # WHEN three calls come in one window, and one more in the next
        answers = [call("GET", f"{url}/conversations/{conversation_id}") for _ in range(3)]
        clock[0] += 10
        answers.append(call("GET", f"{url}/conversations/{conversation_id}"))
    # THEN the third is Intercom's 429, and the next window starts afresh
    assert [answer.status_code for answer in answers] == [200, 200, 429, 200]
    assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == ["1", "0", "0", "1"]
    limited = answers[2]
    assert first_error(limited) == (429, "rate_limit_exceeded")
    assert limited.json()["errors"][0]["message"] == "Exceeded rate limit of 2 in 10_seconds"
    assert limited.headers["X-RateLimit-Reset"] == "1800000010"
    assert "Retry-After" not in limited.headers


def test_an_injected_transient_fault_is_intercoms_429_on_the_note(url: str, simulator: IntercomSimulator) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.inject_fault("write_back", "transient")
    body = {"message_type": "note", "type": "admin", "admin_id": "991267001", "body": "<p>x</p>"}
    answer = call("POST", f"{url}/conversations/{conversation_id}/reply", body=body)
    assert first_error(answer) == (429, "rate_limit_exceeded")
    assert "X-RateLimit-Reset" in answer.headers
    assert simulator.ticket_view(conversation_id)["notes"] == []


def test_unknown_operations_faults_and_conversations_are_refused(simulator: IntercomSimulator) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        simulator.inject_fault("create_refund", "transient")
    with pytest.raises(ValueError, match="unknown fault"):
        simulator.inject_fault("read_ticket", "meltdown")
    with pytest.raises(KeyError):
        simulator.agent_action("424242", "approve")
    with pytest.raises(KeyError):
        simulator.ticket_view("424242")
    with pytest.raises(ValueError, match="payment_id"):
        simulator.seed_ticket({"payment_provider": "stripe"})


def test_the_control_routes_seed_tag_and_show_a_conversation(url: str, simulator: IntercomSimulator) -> None:
    seeded = requests.post(f"{url}/_control/conversations", json=REQUEST, timeout=5)
    assert seeded.status_code == 201
    conversation_id = seeded.json()["id"]
    assert requests.post(
        f"{url}/_control/conversations/{conversation_id}/tag", json={"intent": "request"}, timeout=5
    ).ok
    view = requests.get(f"{url}/_control/conversations/{conversation_id}", timeout=5).json()
    assert [tag["name"] for tag in view["ticket"]["tags"]["tags"]] == ["refund_requested"]
    assert simulator.notifications[-1]["data"]["item"]["id"] == conversation_id
    missing = requests.post(f"{url}/_control/conversations/1/tag", json={"intent": "request"}, timeout=5)
    assert missing.status_code == 404


def test_local_secrets_are_the_token_the_api_takes_and_the_secret_it_signs_with(
    url: str, simulator: IntercomSimulator
) -> None:
    secrets = simulator.local_secrets()
    conversation_id = simulator.seed_ticket(REQUEST)
    headers = {"Authorization": f"Bearer {secrets['api']['access_token']}"}
    assert call("GET", f"{url}/conversations/{conversation_id}", headers).status_code == 200
    signed = simulator.sign_webhook(b'{"a":1}', secrets["verification"]["client_secrets"][0])
    assert signed["X-Hub-Signature"].startswith("sha1=")
    assert len(signed["X-Hub-Signature"]) == 45
    assert json.loads(json.dumps(secrets)) == secrets
