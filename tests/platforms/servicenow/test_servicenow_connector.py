"""ServiceNow's connector against the simulator: OAuth tokens (cached, bought again before expiry and once on a 401),
Basic, the Table API's reads and one-PATCH write-backs, the journal search, and ServiceNow's errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from local.simulators.base import FaultRule
from local.simulators.servicenow import AGENT_FOR_ROLE, ServiceNowSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import ConfigurationError, NotFound, OutcomeUnknownError, RejectedError, TransientError
from refundflow.platforms.servicenow import connector as servicenow
from refundflow.platforms.servicenow.connector import (
    ServiceNowSettings,
    ServiceNowTickets,
    ServiceNowTokens,
    parse_states,
)
from refundflow.ports import TicketUpdate
from tests.support.servers import serve_wsgi

CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "ServiceNowConnectorClientSecret"
USER, PASSWORD = "refundflow.integration", "ConnectorTestPassw0rd!"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def instance() -> Iterator[tuple[ServiceNowSimulator, str]]:
    simulator = ServiceNowSimulator({USER: PASSWORD}, clients={CLIENT_ID: CLIENT_SECRET})
    with serve_wsgi(simulator) as url:
        yield simulator, url


def http(url: str, **headers: str) -> HttpClient:
    return HttpClient(
        platform="servicenow",
        base_url=url,
        default_headers={"Accept": "application/json", **headers},
        timeout=(5.0, 30.0),
    )


def oauth(
    url: str, *, clock: Clock | None = None, grant: str = "client_credentials", **options: Any
) -> ServiceNowTickets:
    tokens = ServiceNowTokens(
        http(url),
        grant=grant,  # type: ignore[arg-type]
        client_id=options.pop("client_id", CLIENT_ID),
        client_secret=options.pop("client_secret", CLIENT_SECRET),
        username=options.pop("username", None),
        password=options.pop("password", None),
        clock=clock or Clock(),
    )
    return ServiceNowTickets(http(url), tokens=tokens, **options)


def seed(simulator: ServiceNowSimulator, **request: Any) -> str:
    return simulator.seed_ticket(
        {"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "team_lead", **request}
    )


def update(label: str | None = "issued", marker: str = "refundflow:evt_1") -> TicketUpdate:
    return TicketUpdate(marker=marker, event="RefundIssued", label=label, text=f"Refund issued: EUR 49.90. [{marker}]")


def table_calls(simulator: ServiceNowSimulator, method: str) -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if seen["method"] == method and "/api/now/table/" in seen["path"]]


# ------------------------------------------------------------------ tokens


def test_one_token_serves_every_call_until_shortly_before_it_expires(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    clock = Clock()
    tickets = oauth(url, clock=clock)
    sys_id = seed(simulator)
    tickets.read_ticket(sys_id)
    tickets.has_update(sys_id, "refundflow:evt_x")
    assert simulator.tokens_issued == 1
    clock.now += 1800 - 61  # still more than the margin left
    tickets.read_ticket(sys_id)
    assert simulator.tokens_issued == 1
    clock.now += 2  # within a minute of its expiry: bought again before it is used
    tickets.read_ticket(sys_id)
    assert simulator.tokens_issued == 2
    token_calls = [seen for seen in simulator.requests_seen if seen["path"] == "/oauth_token.do"]
    assert "grant_type=client_credentials" in token_calls[0]["body"]


def test_a_401_forgets_the_token_and_the_call_is_made_once_more(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    tickets = oauth(url)
    sys_id = seed(simulator)
    tickets.read_ticket(sys_id)
    simulator.expire_tokens()  # revoked or expired early: the cached token is refused
    record = tickets.read_ticket(sys_id)
    assert record["sys_id"] == sys_id
    assert simulator.tokens_issued == 2
    unauthorised = [seen for seen in table_calls(simulator, "GET") if seen["path"].endswith(sys_id)]
    assert len(unauthorised) == 3  # the first read, the refused one, the one with the new token


def test_a_401_with_a_new_token_too_is_a_refusal_not_a_loop(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    tickets = oauth(url)
    sys_id = seed(simulator)
    simulator.add_fault(FaultRule(method="GET", path=sys_id, status=401, times=2))
    with pytest.raises(RejectedError) as refused:
        tickets.read_ticket(sys_id)
    assert refused.value.code == "provider_authentication_failed"
    assert simulator.tokens_issued == 2


def test_refused_client_credentials_are_a_configuration_refusal(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    with pytest.raises(RejectedError) as refused:
        oauth(url, client_secret="not-the-secret").read_ticket(seed(simulator))
    assert refused.value.code == "servicenow_credentials"
    assert "access_denied" in str(refused.value)


def test_an_instance_without_the_client_credentials_grant_refuses_it(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    simulator.client_credentials_enabled = False
    with pytest.raises(RejectedError) as refused:
        oauth(url).read_ticket(seed(simulator))
    assert refused.value.code == "servicenow_credentials"


def test_the_password_grant_acts_as_the_integration_user(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    tickets = oauth(url, grant="password", username=USER, password=PASSWORD)
    sys_id = seed(simulator)
    tickets.write_back(sys_id, update())
    assert simulator.journal[-1]["sys_created_by"] == USER
    with pytest.raises(RejectedError):
        oauth(url, grant="password", username=USER, password="wrong").read_ticket(sys_id)


def test_an_unavailable_token_endpoint_is_transient(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    simulator.add_fault(FaultRule(method="POST", path="^/oauth_token.do$", status=503, headers={"Retry-After": "7"}))
    with pytest.raises(TransientError) as unavailable:
        oauth(url).read_ticket(seed(simulator))
    assert unavailable.value.retry_after_seconds == 7


def test_basic_auth_sends_the_users_credentials(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    import base64

    good = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    sys_id = seed(simulator)
    assert ServiceNowTickets(http(url, Authorization=f"Basic {good}")).read_ticket(sys_id)["sys_id"] == sys_id
    bad = base64.b64encode(f"{USER}:wrong".encode()).decode()
    with pytest.raises(RejectedError) as refused:
        ServiceNowTickets(http(url, Authorization=f"Basic {bad}")).read_ticket(sys_id)
    assert refused.value.code == "provider_authentication_failed"
    assert "User Not Authenticated" in str(refused.value)


# ------------------------------------------------------------------ reads


def test_a_record_is_read_with_references_as_sys_ids_and_its_caller(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    sys_id = seed(simulator, customer_email="ada@example.com", customer_name="Ada Lovelace", amount="49.90")
    record = oauth(url).read_ticket(sys_id)
    assert record["assigned_to"] == AGENT_FOR_ROLE["team_lead"]
    assert isinstance(record["assignment_group"], str)
    assert record["u_refund_amount"] == "49.90"
    assert record["requester"]["email"] == "ada@example.com"
    assert record["requester"]["name"] == "Ada Lovelace"


def test_a_case_is_read_from_the_case_table_with_its_contact(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    sys_id = seed(simulator, table="sn_customerservice_case", customer_email="grace@example.com")
    record = oauth(url, table="sn_customerservice_case").read_ticket(sys_id)
    assert record["number"].startswith("CS")
    assert record["requester"]["email"] == "grace@example.com"
    with pytest.raises(NotFound):
        oauth(url).read_ticket(sys_id)  # the incident table has no such record


def test_an_unknown_record_is_not_found_on_a_read_and_a_write(instance: tuple[ServiceNowSimulator, str]) -> None:
    _, url = instance
    with pytest.raises(NotFound) as read:
        oauth(url).read_ticket("0" * 32)
    assert "No Record found" in str(read.value)
    with pytest.raises(NotFound):
        oauth(url).write_back("0" * 32, update())


def test_a_rate_limit_rule_is_transient_with_its_retry_after(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    simulator.requests_per_hour = 2
    tickets = oauth(url)
    sys_id = seed(simulator)
    tickets.read_ticket(sys_id)  # the record and its caller: two calls
    with pytest.raises(TransientError) as limited:
        tickets.has_update(sys_id, "refundflow:evt_1")
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after_seconds is not None
    assert 0 < limited.value.retry_after_seconds <= 3600


def test_server_errors_are_transient_on_reads_and_unknown_on_writes(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    tickets = oauth(url)
    sys_id = seed(simulator)
    simulator.inject_fault("read_ticket", "server_error")
    with pytest.raises(TransientError):
        tickets.read_ticket(sys_id)
    simulator.inject_fault("write_back", "server_error")
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(sys_id, update())


def test_an_unexpected_refusal_names_servicenows_words(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    sys_id = seed(simulator)
    body = {"error": {"message": "Operation Failed", "detail": "Data Policy Exception: Close notes is mandatory"}}
    simulator.add_fault(FaultRule(method="PATCH", path=sys_id, status=400, body={**body, "status": "failure"}))
    with pytest.raises(RejectedError) as refused:
        oauth(url).write_back(sys_id, update())
    assert refused.value.code == "servicenow_400"
    assert "Close notes is mandatory" in str(refused.value)


# ------------------------------------------------------------------ write-back


def test_a_write_back_is_one_patch_with_the_work_note_and_the_status(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    sys_id = seed(simulator)
    oauth(url).write_back(sys_id, update("issued"))
    [patch] = table_calls(simulator, "PATCH")
    assert json.loads(patch["body"]) == {
        "work_notes": "Refund issued: EUR 49.90. [refundflow:evt_1]",
        "u_refund_status": "issued",
    }
    view = simulator.ticket_view(sys_id)
    assert view["notes"] == ["Refund issued: EUR 49.90. [refundflow:evt_1]"]
    assert view["public"] == []
    assert view["labels"] == ["issued"]
    assert view["ticket"]["state"] == "1"  # no state mapped: the record's state is the agents'
    assert simulator.ignored_fields == []


def test_a_mapped_label_moves_the_state_and_an_unmapped_one_does_not(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    sys_id = seed(simulator)
    tickets = oauth(url, states={"completed": "6"})
    tickets.write_back(sys_id, update("processing", "refundflow:evt_1"))
    assert simulator.ticket_view(sys_id)["ticket"]["state"] == "1"
    tickets.write_back(sys_id, update("completed", "refundflow:evt_2"))
    assert simulator.ticket_view(sys_id)["ticket"]["state"] == "6"
    assert simulator.ticket_view(sys_id)["labels"] == ["completed"]


def test_a_note_only_update_sets_no_field(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    sys_id = seed(simulator)
    oauth(url, states={"completed": "6"}).write_back(sys_id, update(None, "refundflow:refused:1"))
    [patch] = table_calls(simulator, "PATCH")
    assert set(json.loads(patch["body"])) == {"work_notes"}


def test_without_a_status_field_only_the_note_is_written(instance: tuple[ServiceNowSimulator, str]) -> None:
    simulator, url = instance
    sys_id = seed(simulator)
    oauth(url, status_field=None).write_back(sys_id, update("issued"))
    assert simulator.ticket_view(sys_id)["labels"] == []
    assert len(simulator.ticket_view(sys_id)["notes"]) == 1


def test_has_update_pages_through_the_work_notes_and_ignores_comments(
    instance: tuple[ServiceNowSimulator, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator, url = instance
    monkeypatch.setattr(servicenow, "JOURNAL_PAGE", 2)
    tickets = oauth(url)
    sys_id = seed(simulator)
    for number in range(5):
        tickets.write_back(sys_id, update("processing", f"refundflow:evt_{number}"))
    assert tickets.has_update(sys_id, "refundflow:evt_0") is True  # the oldest: on the third page, newest first
    assert tickets.has_update(sys_id, "refundflow:evt_9") is False
    simulator._journal("incident", sys_id, "comments", "public reply refundflow:evt_7", "agent")
    assert tickets.has_update(sys_id, "refundflow:evt_7") is False  # a customer-visible comment is not our note
    # AND the customer's message is looked for among the comments only
    simulator._journal("incident", sys_id, "work_notes", "pasted refundflow:reply:rf_1:issued", "agent")
    assert tickets.has_update(sys_id, "refundflow:reply:rf_1:issued") is False
    simulator._journal("incident", sys_id, "comments", "Hello (Reference: refundflow:reply:rf_1:issued)", "api")
    assert tickets.has_update(sys_id, "refundflow:reply:rf_1:issued") is True
    journal_reads = [seen for seen in simulator.requests_seen if seen["path"].endswith("sys_journal_field")]
    assert "element_id%3D" + sys_id in journal_reads[0]["query"]


# ------------------------------------------------------------------ settings


def build(secret: dict[str, Any], **values: str) -> ServiceNowTickets:
    config = ServiceNowSettings.model_validate(values)
    return servicenow._build(config, "refundflow/servicenow", secret)


def test_the_settings_choose_the_auth_and_the_secret_must_fit() -> None:
    oauth_client = build({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert oauth_client.tokens is not None
    basic = build({"username": USER, "password": PASSWORD}, SERVICENOW_AUTH="basic")
    assert basic.tokens is None
    assert basic.http.default_headers["Authorization"].startswith("Basic ")
    password = build(
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "username": USER, "password": PASSWORD},
        SERVICENOW_AUTH="oauth_password",
        SERVICENOW_TABLE="sn_customerservice_case",
        SERVICENOW_STATES="completed=6, failed=3",
    )
    assert (password.table, password.states) == ("sn_customerservice_case", {"completed": "6", "failed": "3"})
    with pytest.raises(ConfigurationError):
        build({"username": USER, "password": PASSWORD})  # client credentials need a client
    with pytest.raises(ConfigurationError):
        build({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, SERVICENOW_AUTH="oauth_password")
    with pytest.raises(ConfigurationError):
        build({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, SERVICENOW_TABLE="sys_user")
    with pytest.raises(ConfigurationError):
        build({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, SERVICENOW_AUTH="token")
    with pytest.raises(ConfigurationError):
        build({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, SERVICENOW_REFUND_STATUS_FIELD="u_x^y")


@pytest.mark.parametrize("text", ["completed", "completed=closed", "Completed=6", "completed=6=7"])
def test_odd_state_pairs_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_states(text)


def test_has_update_finds_a_note_the_journal_acls_hide_in_the_records_work_notes(
    instance: tuple[ServiceNowSimulator, str],
) -> None:
    # GIVEN an integration user whose read ACLs filter every journal row out of lists (an empty answer, no error)
    simulator, url = instance
    simulator.journal_rows_visible = False
    tickets = oauth(url)
    sys_id = seed(simulator)
    tickets.write_back(sys_id, update("issued", "refundflow:evt_hidden"))
    # WHEN the kit looks for the note THEN the record's work notes (display value) still show it, and only it
    assert tickets.has_update(sys_id, "refundflow:evt_hidden") is True
    assert tickets.has_update(sys_id, "refundflow:evt_other") is False
    record_reads = [seen for seen in table_calls(simulator, "GET") if "sysparm_display_value=true" in seen["query"]]
    assert len(record_reads) == 2
