"""Zendesk's connector, webhook verification, default mapping and simulator: the shared ticket conformance suite,
and what the simulator holds to as Zendesk documents it (auth, error bodies, comment pages)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from local.simulators.zendesk import FIELD_IDS, ZendeskSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.zendesk.connector import ZendeskTickets
from refundflow.platforms.zendesk.inbound import ZendeskInbound
from tests.conformance.ticket_suite import Delivery, TicketHarness, TicketSuite, update
from tests.support.servers import DeliveryRecorder, serve_wsgi

EMAIL = "conformance@example.com"
API_TOKEN = "zendesk-conformance-token-0123456789"
SIGNING_SECRET = "zendesk-conformance-signing-secret-0123456789"
SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"


def restamp(delivery: Delivery, age: float) -> Delivery:
    """The body signed again as Zendesk documents it, ``age`` seconds ago."""
    headers, body = delivery
    stamp = (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(SIGNING_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    kept = {key: value for key, value in headers.items() if key.lower() not in {SIGNATURE.lower(), TIMESTAMP.lower()}}
    return {**kept, SIGNATURE: base64.b64encode(digest).decode(), TIMESTAMP: stamp}, body


def basic(email: str = EMAIL, token: str = API_TOKEN) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ZendeskSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = ZendeskSimulator(
            email=EMAIL,
            api_token=API_TOKEN,
            signing_secret=SIGNING_SECRET,
            webhook_url=receiver_url,
        )
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def connector(url: str, **overrides: str) -> ZendeskTickets:
    http = HttpClient(
        platform="zendesk",
        base_url=url,
        default_headers={**basic(**overrides), "Accept": "application/json"},
        timeout=(5.0, 30.0),
    )
    return ZendeskTickets(http, status_field_id=FIELD_IDS["refund_status"])


@pytest.fixture
def harness(servers: tuple[ZendeskSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return TicketHarness(
        name="zendesk",
        tickets=connector(url),
        inbound=ZendeskInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=restamp,
    )


class TestZendeskConformance(TicketSuite):
    pass


# ---------------------------------------------------------------- the simulator, as strict as Zendesk


def test_a_wrong_api_token_is_refused_with_zendesks_answer(
    servers: tuple[ZendeskSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = servers
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1"})
    for headers in (basic(token="not-the-token"), {"Authorization": f"Bearer {API_TOKEN}"}, {}):
        answer = requests.get(f"{url}/api/v2/tickets/{ticket_id}", headers=headers, timeout=5)
        assert (answer.status_code, answer.json()) == (401, {"error": "Couldn't authenticate you"})


def test_an_unknown_custom_field_is_refused_and_changes_nothing(
    servers: tuple[ZendeskSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = servers
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1"})
    body = {"ticket": {"comment": {"body": "x", "public": False}, "custom_fields": [{"id": 123, "value": "issued"}]}}
    answer = requests.put(f"{url}/api/v2/tickets/{ticket_id}", json=body, headers=basic(), timeout=5)
    assert answer.status_code == 422
    assert answer.json()["error"] == "RecordInvalid"
    assert simulator.ticket_view(ticket_id)["notes"] == []


def test_an_unknown_ticket_is_zendesks_record_not_found(
    servers: tuple[ZendeskSimulator, str, DeliveryRecorder],
) -> None:
    _, url, _ = servers
    answer = requests.put(f"{url}/api/v2/tickets/99999", json={"ticket": {}}, headers=basic(), timeout=5)
    assert (answer.status_code, answer.json()["error"]) == (404, "RecordNotFound")


def test_the_requester_is_side_loaded_only_when_asked(servers: tuple[ZendeskSimulator, str, DeliveryRecorder]) -> None:
    simulator, url, _ = servers
    ticket_id = simulator.seed_ticket(
        {"payment_provider": "stripe", "payment_id": "pi_1", "customer_email": "c@example.com"}
    )
    plain = requests.get(f"{url}/api/v2/tickets/{ticket_id}.json", headers=basic(), timeout=5).json()
    assert "users" not in plain
    loaded = requests.get(f"{url}/api/v2/tickets/{ticket_id}", params={"include": "users"}, headers=basic(), timeout=5)
    emails = {user["email"] for user in loaded.json()["users"]}
    assert "c@example.com" in emails


def test_comments_come_in_pages_linked_by_absolute_urls(
    servers: tuple[ZendeskSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = servers
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1"})
    tickets = connector(url)
    written = [update() for _ in range(3)]
    for item in written:
        tickets.write_back(ticket_id, item)
    first = requests.get(
        f"{url}/api/v2/tickets/{ticket_id}/comments",
        params={"sort_order": "desc", "per_page": "2"},
        headers=basic(),
        timeout=5,
    ).json()
    assert first["count"] == 4  # the description and three notes
    assert [comment["body"] for comment in first["comments"]] == [written[2].text, written[1].text]
    assert first["next_page"].startswith(f"{url}/api/v2/tickets/{ticket_id}/comments?")
    second = requests.get(first["next_page"], headers=basic(), timeout=5).json()
    assert [comment["body"] for comment in second["comments"]] == [
        written[0].text,
        simulator.tickets[int(ticket_id)]["description"],
    ]
    assert second["next_page"] is None


def test_has_update_follows_next_page_to_an_old_marker(servers: tuple[ZendeskSimulator, str, DeliveryRecorder]) -> None:
    simulator, url, _ = servers
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1"})
    tickets = connector(url)
    oldest = update()
    tickets.write_back(ticket_id, oldest)
    for _ in range(120):  # more than one page of 100
        simulator.comments[int(ticket_id)].append(simulator._comment(380001, "busy", public=True))
    assert tickets.has_update(ticket_id, oldest.marker) is True
    pages = [seen for seen in simulator.requests_seen if seen["path"] == f"/api/v2/tickets/{ticket_id}/comments"]
    assert len(pages) == 2


def test_the_trigger_signs_as_zendesk_and_keeps_its_invocation_id(
    servers: tuple[ZendeskSimulator, str, DeliveryRecorder],
) -> None:
    simulator, _, receiver = servers
    receiver.clear()
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1"})
    simulator.agent_action(ticket_id, "approve")
    receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    headers, body = receiver.deliveries[0]
    assert body == json.dumps({"ticket_id": ticket_id}).encode()
    expected = hmac.new(SIGNING_SECRET.encode(), headers[TIMESTAMP].encode() + body, hashlib.sha256).digest()
    assert headers[SIGNATURE] == base64.b64encode(expected).decode()
    assert headers["X-Zendesk-Webhook-Invocation-Id"].isdigit()
    assert "refund_approved" in simulator.tickets[int(ticket_id)]["tags"]


def test_our_own_updates_fire_no_trigger(servers: tuple[ZendeskSimulator, str, DeliveryRecorder]) -> None:
    simulator, url, _ = servers
    simulator.webhooks.wait_idle(timeout=10)
    before = len(simulator.webhooks.deliveries)
    ticket_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1"})
    connector(url).write_back(ticket_id, update())
    assert len(simulator.webhooks.deliveries) == before


def test_the_sandbox_is_driven_over_http_too(servers: tuple[ZendeskSimulator, str, DeliveryRecorder]) -> None:
    _, url, receiver = servers
    receiver.clear()
    seeded = requests.post(
        f"{url}/_control/tickets",
        json={"payment_provider": "stripe", "payment_id": "pi_http", "amount": "12.30", "approver_role": None},
        timeout=5,
    )
    assert seeded.status_code == 201
    ticket_id = seeded.json()["id"]
    acted = requests.post(f"{url}/_control/tickets/{ticket_id}/agent-action", json={"intent": "request"}, timeout=5)
    assert acted.status_code == 200
    receiver.wait_until(lambda deliveries: any(ticket_id.encode() in body for _, body in deliveries))
    view = requests.get(f"{url}/_control/tickets/{ticket_id}/view", timeout=5).json()
    assert view["ticket"]["tags"] == ["refund_requested"]
    assert view["ticket"]["group_id"] == 9100000003  # a group the default mapping gives no role
    assert requests.get(f"{url}/_control/tickets/99999/view", timeout=5).status_code == 404
    assert (
        requests.post(f"{url}/_control/tickets/99999/agent-action", json={"intent": "approve"}, timeout=5).status_code
        == 404
    )
    assert requests.post(f"{url}/_control/tickets", json={"payment_id": "x"}, timeout=5).status_code == 400
