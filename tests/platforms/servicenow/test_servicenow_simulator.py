"""The ServiceNow simulator is as strict as an instance: auth on every call, ServiceNow's error bodies, unknown
tables and records, journal fields, rate limit rules, and REST messages sent only for the agent's refund action."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.base import TicketSandbox
from local.simulators.servicenow import (
    ACTION_FIELD,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    DEFAULT_WEBHOOK_SECRET,
    ServiceNowSimulator,
)
from refundflow.platforms.servicenow.inbound import ServiceNowInbound
from tests.support.servers import DeliveryRecorder, serve_wsgi

BASIC = {"Authorization": "Basic " + base64.b64encode(f"{DEFAULT_USERNAME}:{DEFAULT_PASSWORD}".encode()).decode()}
FAILURE_KEYS = {"error", "status"}


@pytest.fixture
def instance() -> Iterator[tuple[ServiceNowSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = ServiceNowSimulator()
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def seed(simulator: ServiceNowSimulator, **request: Any) -> str:
    return simulator.seed_ticket(
        {"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "agent", **request}
    )


def is_failure(response: requests.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == FAILURE_KEYS
    assert body["status"] == "failure"
    assert message in body["error"]["message"]


def test_it_is_a_ticket_sandbox() -> None:
    assert isinstance(ServiceNowSimulator(), TicketSandbox)


def test_every_table_call_needs_credentials(instance: tuple[ServiceNowSimulator, str, DeliveryRecorder]) -> None:
    simulator, url, _ = instance
    sys_id = seed(simulator)
    is_failure(requests.get(f"{url}/api/now/table/incident/{sys_id}", timeout=5), 401, "User Not Authenticated")
    is_failure(
        requests.get(f"{url}/api/now/table/incident/{sys_id}", headers={"Authorization": "Bearer made-up"}, timeout=5),
        401,
        "User Not Authenticated",
    )
    assert (
        requests.get(f"{url}/api/now/table/incident/{sys_id}", headers=BASIC, timeout=5).json()["result"]["sys_id"]
        == sys_id
    )


def test_the_token_endpoint_issues_expiring_bearer_tokens(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = instance
    client_id, client_secret = next(iter(simulator.clients.items()))
    answer = requests.post(
        f"{url}/oauth_token.do",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        timeout=5,
    ).json()
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 1800
    bearer = {"Authorization": f"Bearer {answer['access_token']}"}
    sys_id = seed(simulator)
    assert requests.get(f"{url}/api/now/table/incident/{sys_id}", headers=bearer, timeout=5).status_code == 200
    simulator.expire_tokens()
    assert requests.get(f"{url}/api/now/table/incident/{sys_id}", headers=bearer, timeout=5).status_code == 401
    refused = requests.post(
        f"{url}/oauth_token.do", data={"grant_type": "client_credentials", "client_id": client_id}, timeout=5
    )
    assert (refused.status_code, refused.json()["error_description"]) == (401, "access_denied")


def test_unknown_records_tables_and_paths_answer_in_servicenows_shape(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    _, url, _ = instance
    is_failure(
        requests.get(f"{url}/api/now/table/incident/{'0' * 32}", headers=BASIC, timeout=5), 404, "No Record found"
    )
    is_failure(
        requests.get(f"{url}/api/now/table/incidents/{'0' * 32}", headers=BASIC, timeout=5),
        400,
        "Invalid table incidents",
    )
    is_failure(requests.get(f"{url}/api/now/nothing", headers=BASIC, timeout=5), 400, "does not represent any resource")


def test_references_are_links_unless_excluded(instance: tuple[ServiceNowSimulator, str, DeliveryRecorder]) -> None:
    simulator, url, _ = instance
    sys_id = seed(simulator)
    linked = requests.get(f"{url}/api/now/table/incident/{sys_id}", headers=BASIC, timeout=5).json()["result"]
    assert set(linked["caller_id"]) == {"link", "value"}
    plain = requests.get(
        f"{url}/api/now/table/incident/{sys_id}",
        params={"sysparm_exclude_reference_link": "true", "sysparm_fields": "sys_id,caller_id"},
        headers=BASIC,
        timeout=5,
    ).json()["result"]
    assert plain == {"sys_id": sys_id, "caller_id": linked["caller_id"]["value"]}


def test_a_patch_writes_journal_entries_and_ignores_unknown_fields(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, receiver = instance
    sys_id = seed(simulator)
    answer = requests.patch(
        f"{url}/api/now/table/incident/{sys_id}",
        json={"work_notes": "internal", "comments": "to the caller", "u_refund_stauts": "issued", "number": "INC1"},
        headers=BASIC,
        timeout=5,
    )
    record = answer.json()["result"]
    assert (record["work_notes"], record["comments"], record["sys_mod_count"]) == ("", "", "1")
    assert record["number"] != "INC1"
    assert "u_refund_stauts" not in record
    assert simulator.ignored_fields == ["u_refund_stauts", "number"]
    view = simulator.ticket_view(sys_id)
    assert (view["notes"], view["public"], view["labels"]) == (["internal"], ["to the caller"], [])
    simulator.webhooks.wait_idle(timeout=10)
    assert receiver.deliveries == []  # no refund action changed: the flow does not run


def test_a_patch_that_is_not_json_is_refused(instance: tuple[ServiceNowSimulator, str, DeliveryRecorder]) -> None:
    simulator, url, _ = instance
    sys_id = seed(simulator)
    is_failure(
        requests.patch(
            f"{url}/api/now/table/incident/{sys_id}",
            data="x",
            headers={**BASIC, "Content-Type": "text/plain"},
            timeout=5,
        ),
        415,
        "Unsupported Media Type",
    )
    is_failure(
        requests.patch(
            f"{url}/api/now/table/incident/{sys_id}",
            data="[1]",
            headers={**BASIC, "Content-Type": "application/json"},
            timeout=5,
        ),
        400,
        "Exception while reading request",
    )


def test_the_journal_query_filters_orders_and_pages(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = instance
    first, second = seed(simulator), seed(simulator)
    for text in ("one", "two", "three"):
        requests.patch(f"{url}/api/now/table/incident/{first}", json={"work_notes": text}, headers=BASIC, timeout=5)
    requests.patch(f"{url}/api/now/table/incident/{second}", json={"work_notes": "other"}, headers=BASIC, timeout=5)
    params = {"sysparm_query": f"element_id={first}^element=work_notes^ORDERBYDESCsys_created_on", "sysparm_limit": "2"}
    page = requests.get(f"{url}/api/now/table/sys_journal_field", params=params, headers=BASIC, timeout=5).json()[
        "result"
    ]
    assert [row["value"] for row in page] == ["three", "two"]
    rest = requests.get(
        f"{url}/api/now/table/sys_journal_field", params={**params, "sysparm_offset": "2"}, headers=BASIC, timeout=5
    ).json()["result"]
    assert [row["value"] for row in rest] == ["one"]


def test_a_rate_limit_rule_answers_429_with_retry_after(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = instance
    simulator.requests_per_hour = 1
    sys_id = seed(simulator)
    ok = requests.get(f"{url}/api/now/table/incident/{sys_id}", headers=BASIC, timeout=5)
    assert ok.headers["X-RateLimit-Limit"] == "1"
    limited = requests.get(f"{url}/api/now/table/incident/{sys_id}", headers=BASIC, timeout=5)
    is_failure(limited, 429, "Rate limit exceeded")
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    assert limited.headers["X-RateLimit-Reset"].isdigit()


def test_an_injected_rate_limit_carries_retry_after(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = instance
    sys_id = seed(simulator)
    simulator.inject_fault("read_ticket", "transient")
    limited = requests.get(f"{url}/api/now/table/incident/{sys_id}", headers=BASIC, timeout=5)
    is_failure(limited, 429, "Rate limit exceeded")
    assert limited.headers["Retry-After"] == "2"
    with pytest.raises(ValueError, match="unknown operation"):
        simulator.inject_fault("delete_ticket", "transient")


@pytest.mark.parametrize("auth", ["header", "basic"])
def test_the_agents_action_sends_the_rest_message_as_configured(auth: str) -> None:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = ServiceNowSimulator(delivery_auth=auth)
        simulator.send_webhooks_to(receiver_url)
        sys_id = seed(simulator)
        simulator.agent_action(sys_id, "approve")
        receiver.wait_until(lambda deliveries: len(deliveries) == 1)
        [(headers, body)] = receiver.deliveries
    sent = json.loads(body)
    assert (sent["sys_id"], sent[ACTION_FIELD], sent["table"], sent["sys_mod_count"]) == (
        sys_id,
        "approved",
        "incident",
        "1",
    )
    assert ("X-Refundflow-Secret" in headers) is (auth == "header")
    news = ServiceNowInbound().verify(headers, body, {"shared_secrets": [DEFAULT_WEBHOOK_SECRET]})
    assert news.tickets[0].event_id == f"{sys_id}:1"


def test_an_api_update_of_the_refund_action_runs_the_flow_too(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, receiver = instance
    sys_id = seed(simulator)
    requests.patch(f"{url}/api/now/table/incident/{sys_id}", json={ACTION_FIELD: "cancelled"}, headers=BASIC, timeout=5)
    receiver.wait_until(lambda deliveries: len(deliveries) == 1)
    assert json.loads(receiver.deliveries[0][1])[ACTION_FIELD] == "cancelled"


def test_the_sandbox_refuses_what_it_cannot_seed_or_act_on() -> None:
    simulator = ServiceNowSimulator()
    with pytest.raises(ValueError, match="payment_id"):
        simulator.seed_ticket({"payment_provider": "stripe"})
    with pytest.raises(ValueError, match="approver_role"):
        simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "admin"})
    with pytest.raises(ValueError, match="table"):
        simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "table": "problem"})
    with pytest.raises(KeyError):
        simulator.agent_action("0" * 32, "approve")
    with pytest.raises(ValueError, match="intent"):
        simulator.agent_action(seed(simulator), "escalate")


def test_display_values_show_names_and_every_journal_entry(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = instance
    sys_id = seed(simulator, approver_role="team_lead")
    for text in ("first note", "second note"):
        requests.patch(f"{url}/api/now/table/incident/{sys_id}", json={"work_notes": text}, headers=BASIC, timeout=5)
    requests.patch(
        f"{url}/api/now/table/incident/{sys_id}", json={"comments": "to the caller"}, headers=BASIC, timeout=5
    )
    shown = requests.get(
        f"{url}/api/now/table/incident/{sys_id}",
        params={"sysparm_display_value": "true", "sysparm_fields": "work_notes,assigned_to,state"},
        headers=BASIC,
        timeout=5,
    ).json()["result"]
    assert shown["assigned_to"] == "Tess Lead"
    assert shown["state"] == "1"
    assert shown["work_notes"].index("second note") < shown["work_notes"].index("first note")  # newest first
    assert "(Work notes)" in shown["work_notes"]
    assert "to the caller" not in shown["work_notes"]
    both = requests.get(
        f"{url}/api/now/table/incident/{sys_id}",
        params={"sysparm_display_value": "all", "sysparm_fields": "assigned_to"},
        headers=BASIC,
        timeout=5,
    ).json()["result"]
    assert both["assigned_to"]["display_value"] == "Tess Lead"
    assert both["assigned_to"]["value"] == simulator.ticket_view(sys_id)["ticket"]["assigned_to"]
    assert "link" in both["assigned_to"]


def test_journal_rows_the_acls_hide_are_left_out_of_lists(
    instance: tuple[ServiceNowSimulator, str, DeliveryRecorder],
) -> None:
    simulator, url, _ = instance
    sys_id = seed(simulator)
    requests.patch(f"{url}/api/now/table/incident/{sys_id}", json={"work_notes": "hidden"}, headers=BASIC, timeout=5)
    params = {"sysparm_query": f"element_id={sys_id}"}
    listed = requests.get(f"{url}/api/now/table/sys_journal_field", params=params, headers=BASIC, timeout=5)
    assert [row["value"] for row in listed.json()["result"]] == ["hidden"]
    simulator.journal_rows_visible = False
    hidden = requests.get(f"{url}/api/now/table/sys_journal_field", params=params, headers=BASIC, timeout=5)
    assert (hidden.status_code, hidden.json()["result"]) == (200, [])
