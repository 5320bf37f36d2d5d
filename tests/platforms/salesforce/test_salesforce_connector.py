"""The Salesforce connector against the simulator: client credentials tokens (cached, bought again before the session
ends and once on a 401), the case and its contact, the composite write-back (all or none), the comment query and its
pages, and Salesforce's error answers (REQUEST_LIMIT_EXCEEDED, NOT_FOUND, 5xx)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.salesforce import QUEUE_FOR_ROLE, SalesforceSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import (
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.platforms.salesforce.connector import (
    LIMIT_RETRY_SECONDS,
    SalesforceSettings,
    SalesforceTickets,
    SalesforceTokenSource,
    _build,
    soql_literal,
)
from refundflow.ports import TicketUpdate
from tests.support.servers import serve_wsgi

CLIENT_ID = "3MVG9ConnectorConsumerKey00000001"
CLIENT_SECRET = "ConnectorConsumerSecret00000000000001"
SESSION = 900.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def org() -> Iterator[tuple[SalesforceSimulator, str, Clock]]:
    clock = Clock()
    simulator = SalesforceSimulator({CLIENT_ID: CLIENT_SECRET}, session_seconds=SESSION, now=clock)
    with serve_wsgi(simulator) as url:
        yield simulator, url, clock


@pytest.fixture
def sim(org: tuple[SalesforceSimulator, str, Clock]) -> SalesforceSimulator:
    simulator, url, _ = org
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    simulator.query_batch_size = 2000
    simulator.api_requests_per_day = 15_000
    return simulator


def tickets(
    org: tuple[SalesforceSimulator, str, Clock], *, secret: str = CLIENT_SECRET, status_field: str | None = None
) -> SalesforceTickets:
    _, url, clock = org
    http = HttpClient(platform="salesforce", base_url=url, timeout=(5.0, 30.0))
    tokens = SalesforceTokenSource(
        http, client_id=CLIENT_ID, client_secret=secret, session_seconds=SESSION, clock=clock
    )
    if status_field is None:
        return SalesforceTickets(http, tokens)
    return SalesforceTickets(http, tokens, status_field=status_field or None)


def seed(sim: SalesforceSimulator, **extra: Any) -> str:
    return sim.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "agent", **extra})


def update(label: str | None = "issued", marker: str = "refundflow:evt_1") -> TicketUpdate:
    return TicketUpdate(
        marker=marker,
        refund_id="rf_1" if label else None,
        event="RefundIssued" if label else "RefundRequestRefused",
        label=label,
        text=f"Refund issued: 49.90 EUR. {marker}",
    )


def api_requests(sim: SalesforceSimulator) -> list[dict[str, Any]]:
    return [seen for seen in sim.requests_seen if seen["path"].startswith("/services/data/")]


# ---------------------------------------------------------------- tokens


def test_one_token_serves_many_calls(sim: SalesforceSimulator, org: Any) -> None:
    desk = tickets(org)
    case_id = seed(sim)
    desk.read_ticket(case_id)
    desk.has_update(case_id, "x")
    desk.write_back(case_id, update())
    assert sim.token_requests == 1
    token_call = next(seen for seen in sim.requests_seen if seen["path"] == "/services/oauth2/token")
    form = parse_qs(token_call["body"])
    assert form == {"grant_type": ["client_credentials"], "client_id": [CLIENT_ID], "client_secret": [CLIENT_SECRET]}
    assert all(seen["headers"]["Authorization"].startswith("Bearer 00D") for seen in api_requests(sim))


def test_a_token_is_bought_again_shortly_before_the_session_ends(sim: SalesforceSimulator, org: Any) -> None:
    # GIVEN a token bought for a session of SESSION seconds
    clock: Clock = org[2]
    desk = tickets(org)
    case_id = seed(sim)
    desk.read_ticket(case_id)
    # WHEN time passes to within the last minute of the session, THEN a new token is bought before the call
    clock.now += SESSION - 120  # still well inside the session: the cached token
    desk.read_ticket(case_id)
    assert sim.token_requests == 1
    clock.now += 90  # within the last minute: a new one first, no 401 on the way
    desk.read_ticket(case_id)
    assert sim.token_requests == 2
    reads = [seen for seen in api_requests(sim) if seen["path"].endswith(f"/sobjects/Case/{case_id}")]
    assert len(reads) == 3  # no read was refused and repeated: the token was new before it could expire
    tokens = {seen["headers"]["Authorization"] for seen in reads}
    assert len(tokens) == 2


def test_a_401_buys_a_new_token_once_and_repeats_the_call(sim: SalesforceSimulator, org: Any) -> None:
    # GIVEN a cached token the org has since revoked
    desk = tickets(org)
    case_id = seed(sim)
    desk.read_ticket(case_id)
    sim.revoke_tokens()
    # WHEN the case is read
    case = desk.read_ticket(case_id)
    # THEN the 401 bought one new token and the read was repeated
    assert case["Id"] == case_id
    assert sim.token_requests == 2
    reads = [seen for seen in api_requests(sim) if seen["path"].endswith(f"/sobjects/Case/{case_id}")]
    assert len(reads) == 3  # the first read, the refused one, the repeat


def test_a_second_401_is_a_refusal(sim: SalesforceSimulator, org: Any) -> None:
    desk = tickets(org)
    case_id = seed(sim)
    sim.add_fault(FaultRule(method="GET", path=r"^/services/data/.*/Case/", status=401, times=2))
    with pytest.raises(RejectedError) as refused:
        desk.read_ticket(case_id)
    assert refused.value.code == "provider_authentication_failed"
    assert sim.token_requests == 2


def test_refused_client_credentials_are_a_configuration_refusal(sim: SalesforceSimulator, org: Any) -> None:
    desk = tickets(org, secret="not-the-secret")
    with pytest.raises(RejectedError) as refused:
        desk.read_ticket(seed(sim))
    assert refused.value.code == "salesforce_credentials"
    assert "invalid client credentials" in str(refused.value)
    assert api_requests(sim) == []


def test_an_unavailable_token_endpoint_is_transient(sim: SalesforceSimulator, org: Any) -> None:
    sim.add_fault(FaultRule(method="POST", path=r"^/services/oauth2/token$", status=503, headers={"Retry-After": "7"}))
    with pytest.raises(TransientError) as unavailable:
        tickets(org).read_ticket(seed(sim))
    assert unavailable.value.code == "salesforce_identity_unavailable"
    assert unavailable.value.retry_after_seconds == 7


# ---------------------------------------------------------------- reads


def test_the_case_comes_with_its_contact(sim: SalesforceSimulator, org: Any) -> None:
    case_id = seed(sim, customer_email="ada@example.com", customer_name="Ada Lovelace")
    case = tickets(org).read_ticket(case_id[:15])
    assert case["Id"] == case_id
    assert case["attributes"]["type"] == "Case"
    assert case["OwnerId"] == QUEUE_FOR_ROLE["agent"]
    assert case["requester"] == {"id": case["ContactId"], "name": "Ada Lovelace", "email": "ada@example.com"}
    paths = [seen["path"] for seen in api_requests(sim)]
    assert paths == [
        f"/services/data/v67.0/sobjects/Case/{case_id}",
        f"/services/data/v67.0/sobjects/Contact/{case['ContactId']}",
    ]


def test_a_deleted_contact_leaves_the_case_readable(sim: SalesforceSimulator, org: Any) -> None:
    case_id = seed(sim)
    sim.contacts.clear()
    case = tickets(org).read_ticket(case_id)
    assert case["Id"] == case_id
    assert "requester" not in case


def test_an_unknown_case_is_not_found(sim: SalesforceSimulator, org: Any) -> None:
    with pytest.raises(NotFound):
        tickets(org).read_ticket("5005e000009Zz9z")


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_on_a_read_is_transient(sim: SalesforceSimulator, org: Any, status: int) -> None:
    sim.add_fault(FaultRule(method="GET", path=r"^/services/data/.*/Case/", status=status))
    with pytest.raises(TransientError):
        tickets(org).read_ticket(seed(sim))


def test_the_api_allowance_spent_is_transient_for_a_while(sim: SalesforceSimulator, org: Any) -> None:
    desk = tickets(org)
    case_id = seed(sim)
    sim.api_requests_per_day = sim.api_calls  # the org's allowance is spent
    with pytest.raises(TransientError) as limited:
        desk.read_ticket(case_id)
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after_seconds == LIMIT_RETRY_SECONDS
    assert "REQUEST_LIMIT_EXCEEDED" in str(limited.value)


def test_a_retry_after_is_honoured_when_sent(sim: SalesforceSimulator, org: Any) -> None:
    sim.add_fault(FaultRule(method="GET", path=r"^/services/data/.*/query", status=403, headers={"Retry-After": "42"}))
    with pytest.raises(TransientError) as limited:
        tickets(org).has_update(seed(sim), "x")
    assert limited.value.retry_after_seconds == 42


def test_permission_refusals_are_final(sim: SalesforceSimulator, org: Any) -> None:
    body = [{"message": "insufficient access rights on object id", "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY"}]
    sim.add_fault(FaultRule(method="GET", path=r"^/services/data/.*/Case/", status=403, body=body))
    with pytest.raises(RejectedError) as refused:
        tickets(org).read_ticket(seed(sim))
    assert refused.value.code == "provider_permission_denied"


# ---------------------------------------------------------------- has_update


def test_has_update_queries_the_cases_comments_with_an_escaped_literal(sim: SalesforceSimulator, org: Any) -> None:
    desk = tickets(org)
    case_id = seed(sim)
    assert desk.has_update(case_id, "refundflow:evt_1") is False
    desk.write_back(case_id, update())
    assert desk.has_update(case_id, "refundflow:evt_1") is True
    assert desk.has_update(case_id, "refundflow:evt_2") is False
    query = next(seen for seen in api_requests(sim) if seen["path"].endswith("/query"))
    soql = parse_qs(query["query"])["q"][0]
    assert soql == f"SELECT Id, CommentBody FROM CaseComment WHERE ParentId = '{case_id}' ORDER BY CreatedDate ASC"


def test_has_update_follows_the_next_records_url(sim: SalesforceSimulator, org: Any) -> None:
    desk = tickets(org)
    case_id = seed(sim)
    for number in range(5):
        desk.write_back(case_id, update(marker=f"refundflow:evt_{number}"))
    sim.query_batch_size = 2
    assert desk.has_update(case_id, "refundflow:evt_4") is True
    pages = [seen["path"] for seen in api_requests(sim) if "/query" in seen["path"]]
    assert pages[0].endswith("/query")
    assert len(pages) == 3
    assert all("/query/" in page for page in pages[1:])


def test_has_update_follows_no_next_page_outside_our_api(sim: SalesforceSimulator, org: Any) -> None:
    page = {"totalSize": 9, "done": False, "records": [], "nextRecordsUrl": "https://elsewhere.example/query/x"}
    sim.add_fault(FaultRule(method="GET", path=r"^/services/data/.*/query$", status=200, body=page))
    assert tickets(org).has_update(seed(sim), "x") is False
    assert len([seen for seen in api_requests(sim) if "/query" in seen["path"]]) == 1


def test_soql_literals_are_escaped() -> None:
    assert soql_literal("a'b\\c\nd") == "a\\'b\\\\c\\nd"


# ---------------------------------------------------------------- write-back


def test_a_write_back_is_one_composite_call_all_or_none(sim: SalesforceSimulator, org: Any) -> None:
    # GIVEN a case; WHEN a refund event is written back
    case_id = seed(sim)
    tickets(org).write_back(case_id, update("issued"))
    # THEN one composite call carried the status field and a private comment, all or none
    [call] = [seen for seen in api_requests(sim) if seen["method"] == "POST"]
    assert call["path"] == "/services/data/v67.0/composite"
    sent = json.loads(call["body"])
    assert sent["allOrNone"] is True
    assert [(sub["method"], sub["url"]) for sub in sent["compositeRequest"]] == [
        ("PATCH", f"/services/data/v67.0/sobjects/Case/{case_id}"),
        ("POST", "/services/data/v67.0/sobjects/CaseComment"),
    ]
    assert sent["compositeRequest"][0]["body"] == {"Refund_Status__c": "issued"}
    assert sent["compositeRequest"][1]["body"]["IsPublished"] is False
    view = sim.ticket_view(case_id)
    assert view["labels"] == ["issued"]
    assert view["public"] == []
    assert view["notes"] == ["Refund issued: 49.90 EUR. refundflow:evt_1"]


def test_a_note_only_update_writes_only_the_comment(sim: SalesforceSimulator, org: Any) -> None:
    case_id = seed(sim)
    tickets(org).write_back(case_id, update(None))
    sent = json.loads(next(seen for seen in api_requests(sim) if seen["method"] == "POST")["body"])
    assert [sub["method"] for sub in sent["compositeRequest"]] == ["POST"]
    assert sim.ticket_view(case_id)["labels"] == []


def test_no_status_field_configured_writes_only_the_comment(sim: SalesforceSimulator, org: Any) -> None:
    case_id = seed(sim)
    tickets(org, status_field="").write_back(case_id, update("issued"))
    assert sim.ticket_view(case_id)["labels"] == []
    assert len(sim.ticket_view(case_id)["notes"]) == 1


def test_a_refused_field_rolls_the_comment_back_and_names_the_cause(sim: SalesforceSimulator, org: Any) -> None:
    # GIVEN a status field the org does not have
    case_id = seed(sim)
    # WHEN the write-back sets it
    with pytest.raises(RejectedError) as refused:
        tickets(org, status_field="Refund_State__c").write_back(case_id, update("issued"))
    # THEN Salesforce's cause is named and the comment, in the same all-or-none call, is not on the case
    assert refused.value.code == "salesforce_invalid_field"
    assert "Refund_State__c" in str(refused.value)
    assert sim.ticket_view(case_id)["notes"] == []  # all or none: the comment was rolled back


def test_a_write_back_to_a_deleted_case_is_not_found(sim: SalesforceSimulator, org: Any) -> None:
    case_id = seed(sim)
    del sim.cases[case_id]
    with pytest.raises(NotFound):
        tickets(org).write_back(case_id, update())


def test_a_server_error_on_the_composite_call_is_an_unknown_outcome(sim: SalesforceSimulator, org: Any) -> None:
    sim.inject_fault("write_back", "server_error")
    with pytest.raises(OutcomeUnknownError):
        tickets(org).write_back(seed(sim), update())


@pytest.mark.parametrize("case_id", ["5005e000001AbCdXYZ", "0035e000001AbCd", "500'; DELETE", "5005e000001AbC"])
def test_an_odd_case_id_makes_no_call(sim: SalesforceSimulator, org: Any, case_id: str) -> None:
    desk = tickets(org)
    for call in (lambda: desk.read_ticket(case_id), lambda: desk.has_update(case_id, "x")):
        with pytest.raises(RejectedError) as refused:
            call()
        assert refused.value.code == "invalid_ticket_id"
    assert sim.requests_seen == []


# ---------------------------------------------------------------- settings


def test_build_takes_the_client_credentials_and_pins_the_version() -> None:
    config = SalesforceSettings.model_validate(
        {"SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com", "SALESFORCE_API_VERSION": "v66.0"}
    )
    built = _build(config, "sf", {"client_id": "key", "client_secret": "secret"})
    assert built.data_path == "/services/data/v66.0"
    assert built.http.base_url == "https://acme.my.salesforce.com"
    assert built.status_field == "Refund_Status__c"


@pytest.mark.parametrize(
    ("settings", "secret"),
    [
        ({}, {"client_id": "key"}),
        ({}, {"client_secret": "secret"}),
        ({"SALESFORCE_API_VERSION": "latest"}, {"client_id": "key", "client_secret": "secret"}),
        ({"SALESFORCE_REFUND_STATUS_FIELD": "Status"}, {"client_id": "key", "client_secret": "secret"}),
        ({"SALESFORCE_SESSION_SECONDS": "30"}, {"client_id": "key", "client_secret": "secret"}),
    ],
)
def test_build_refuses_what_salesforce_would(settings: dict[str, str], secret: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        _build(SalesforceSettings.model_validate(settings), "sf", secret)


def test_a_comment_over_4000_bytes_is_cut_and_keeps_its_marker(sim: SalesforceSimulator, org: Any) -> None:
    case_id = seed(sim)
    marker = "refundflow:evt_wide"
    wide = TicketUpdate(
        marker=marker, refund_id="rf_1", event="RefundIssued", label="issued", text="€" * 1970 + f" [{marker}]"
    )
    assert len(wide.text.encode()) > 4000
    tickets(org).write_back(case_id, wide)
    [note] = sim.ticket_view(case_id)["notes"]
    assert len(note.encode()) <= 4000
    assert note.endswith(f"... [{marker}]")
    assert tickets(org).has_update(case_id, marker) is True


def test_a_note_only_write_back_to_a_deleted_case_is_not_found(sim: SalesforceSimulator, org: Any) -> None:
    case_id = seed(sim)
    del sim.cases[case_id]
    with pytest.raises(NotFound):
        tickets(org).write_back(case_id, update(None))
