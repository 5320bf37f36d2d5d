"""The Gorgias simulator is as strict as Gorgias where refundflow could get it wrong: credentials, the internal
note's required fields, unknown fields, tag bodies, the rate limit's headers; and its HTTP integration's calls are
the ones intake verifies."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from local.simulators.gorgias import BUCKET_SIZE, DEFAULT_TOKEN
from refundflow.platforms.gorgias.inbound import GorgiasInbound
from tests.platforms.gorgias.conftest import Served


def call(served: Served, method: str, path: str, body: Any = None, auth: str | None = None) -> requests.Response:
    auth = auth or base64.b64encode(f"{served.simulator.email}:{served.simulator.api_key}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}"}
    return requests.request(method, f"{served.url}{path}", json=body, headers=headers, timeout=5)


def ticket(served: Served) -> str:
    return served.simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "ch_3PqSimulator00001"})


NOTE = {"channel": "internal-note", "from_agent": True, "via": "api", "body_text": "note"}


def test_another_api_key_is_refused_with_gorgias_error_body(served: Served) -> None:
    wrong = base64.b64encode(f"{served.simulator.email}:wrong".encode()).decode()
    answer = call(served, "GET", f"/api/tickets/{ticket(served)}", auth=wrong)
    assert answer.status_code == 401
    assert "msg" in answer.json()["error"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": None}, "channel"),
        ({"from_agent": None}, "from_agent"),
        ({"from_agent": False}, "from_agent"),
        ({"sender": {"email": "someone@else.com"}}, "sender"),
        ({"colour": "red"}, "colour"),
        ({"external_id": "x" * 256}, "external_id"),
    ],
)
def test_an_internal_note_missing_what_gorgias_requires_is_refused_naming_the_field(
    served: Served, change: dict[str, Any], field: str
) -> None:
    body = {**NOTE, "sender": {"email": served.simulator.email}, **change}
    body = {key: value for key, value in body.items() if value is not None}
    answer = call(served, "POST", f"/api/tickets/{ticket(served)}/messages", body)
    assert answer.status_code == 400
    assert field in answer.json()["error"]["data"]


def test_a_valid_internal_note_is_stored_as_a_note_never_sent_to_the_customer(served: Served) -> None:
    ticket_id = ticket(served)
    answer = call(served, "POST", f"/api/tickets/{ticket_id}/messages", {**NOTE, "sender": {"id": 101}})
    assert answer.status_code == 201
    assert answer.json()["public"] is False
    assert served.simulator.ticket_view(ticket_id)["notes"] == ["note"]


@pytest.mark.parametrize("body", [{}, {"names": []}, {"labels": ["x"]}, {"names": "refund"}, {"ids": [1]}])
def test_a_tag_call_without_valid_ids_or_names_is_refused(served: Served, body: dict[str, Any]) -> None:
    answer = call(served, "POST", f"/api/tickets/{ticket(served)}/tags", body)
    assert answer.status_code in (400, 404)


def test_tags_are_added_removed_and_replaced_without_touching_the_others_unless_replaced(served: Served) -> None:
    ticket_id = ticket(served)
    served.simulator.agent_action(ticket_id, "request")
    assert call(served, "POST", f"/api/tickets/{ticket_id}/tags", {"names": ["a", "b"]}).status_code == 201
    assert call(served, "DELETE", f"/api/tickets/{ticket_id}/tags", {"names": ["a", "zz"]}).status_code == 204
    names = [tag["name"] for tag in call(served, "GET", f"/api/tickets/{ticket_id}").json()["tags"]]
    assert names == ["refund", "b"]
    assert call(served, "PUT", f"/api/tickets/{ticket_id}/tags", {"names": ["c"]}).status_code == 202
    assert [tag["name"] for tag in call(served, "GET", f"/api/tickets/{ticket_id}").json()["tags"]] == ["c"]


def test_every_answer_counts_the_bucket_and_a_full_bucket_answers_429_with_retry_after(served: Served) -> None:
    ticket_id = ticket(served)
    first = call(served, "GET", f"/api/tickets/{ticket_id}")
    assert first.headers["X-Gorgias-Account-Api-Call-Limit"] == f"1/{BUCKET_SIZE}"
    for _ in range(BUCKET_SIZE - 1):
        call(served, "GET", f"/api/tickets/{ticket_id}")
    refused = call(served, "GET", f"/api/tickets/{ticket_id}")
    assert refused.status_code == 429
    assert refused.headers["Retry-after"] == "1"
    served.clock.advance(5)  # 10 calls leak out
    assert call(served, "GET", f"/api/tickets/{ticket_id}").status_code == 200


def test_an_agents_tag_sends_the_integrations_call_that_intake_verifies(served: Served) -> None:
    # GIVEN a ticket, WHEN an agent tags it refund_approved
    ticket_id = ticket(served)
    served.simulator.agent_action(ticket_id, "approve")
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    # THEN the call carries the integration's token and the template's fields, and intake takes it as news
    headers, raw = served.receiver.deliveries[-1]
    assert headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"
    body = json.loads(raw)
    assert body["ticket_id"] == ticket_id
    assert "refund_approved" in body["tags"]
    [news] = GorgiasInbound().verify(headers, raw, served.simulator.local_secrets()["verification"]).tickets
    assert news.event_id.startswith(f"{ticket_id}:")


def test_our_own_api_updates_call_the_integration_only_when_asked_to(served: Served) -> None:
    ticket_id = ticket(served)
    call(served, "POST", f"/api/tickets/{ticket_id}/tags", {"names": ["refund_issued"]})
    served.simulator.notify_api_updates = True
    call(served, "POST", f"/api/tickets/{ticket_id}/tags", {"names": ["refund_completed"]})
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    assert served.simulator.webhooks.wait_idle()
    assert len(served.receiver.deliveries) == 1
    assert "refund_completed" in json.loads(served.receiver.deliveries[0][1])["tags"]


def test_ticket_view_shows_notes_public_replies_and_only_the_labels_refundflow_set(served: Served) -> None:
    ticket_id = ticket(served)
    served.simulator.agent_action(ticket_id, "approve")
    call(served, "POST", f"/api/tickets/{ticket_id}/tags", {"names": ["refund_issued"]})
    view = served.simulator.ticket_view(ticket_id)
    assert view["labels"] == ["refund_issued"]
    assert view["notes"] == []
    assert view["public"] == []
    assert {tag["name"] for tag in view["ticket"]["tags"]} == {"refund_approved", "refund_issued"}
    with pytest.raises(KeyError):
        served.simulator.ticket_view("424242")


def test_the_sandbox_is_driven_over_http_too(served: Served) -> None:
    seeded = requests.post(
        f"{served.url}/_control/tickets",
        json={"payment_provider": "stripe", "payment_id": "pi_http00001", "amount": "12.30", "approver_role": None},
        timeout=5,
    )
    assert seeded.status_code == 201
    ticket_id = seeded.json()["id"]
    acted = requests.post(
        f"{served.url}/_control/tickets/{ticket_id}/agent-action", json={"intent": "request"}, timeout=5
    )
    assert acted.status_code == 200
    served.receiver.wait_until(lambda deliveries: any(ticket_id.encode() in body for _, body in deliveries))
    view = requests.get(f"{served.url}/_control/tickets/{ticket_id}/view", timeout=5).json()
    assert [tag["name"] for tag in view["ticket"]["tags"]] == ["refund"]
    assert view["ticket"]["assignee_team_id"] == 7003  # a team the default mapping gives no role
    assert requests.get(f"{served.url}/_control/tickets/99999/view", timeout=5).status_code == 404
    missing = requests.post(f"{served.url}/_control/tickets/99999/agent-action", json={"intent": "approve"}, timeout=5)
    assert missing.status_code == 404
    assert requests.post(f"{served.url}/_control/tickets", json={"payment_id": "x"}, timeout=5).status_code == 400


def test_the_demo_runs_the_usual_help_desk_scenarios() -> None:
    import local.simulators.gorgias as module

    assert [scenario.name for scenario in module.DEMO_SCENARIOS]
