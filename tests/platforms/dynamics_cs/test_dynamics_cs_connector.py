"""The Dataverse Web API connector against the simulator: Entra ID tokens (cached, bought again on expiry and once
on a 401), the service protection limit, unknown cases, server errors, a resolved (read-only) case, note paging."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.simulators.base import FaultRule
from local.simulators.dynamics_cs import DynamicsCaseSimulator
from refundflow.connectors.entra import EntraTokenSource
from refundflow.connectors.http import HttpClient
from refundflow.errors import ConfigurationError, NotFound, OutcomeUnknownError, RejectedError, TransientError
from refundflow.platforms.dynamics_cs import connector as module
from refundflow.platforms.dynamics_cs.connector import DynamicsCases, DynamicsCaseSettings, _build, scope_of
from refundflow.ports import TicketUpdate
from tests.support.servers import serve_wsgi

UNKNOWN_CASE = "00000000-0000-4000-8000-00000000dead"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def desk() -> Iterator[tuple[DynamicsCaseSimulator, str, Clock]]:
    clock = Clock()
    simulator = DynamicsCaseSimulator(clock=clock)
    with serve_wsgi(simulator) as url:
        yield simulator, url, clock


def cases(
    simulator: DynamicsCaseSimulator, url: str, clock: Clock, *, client_secret: str | None = None, **options: Any
) -> DynamicsCases:
    api_base = f"{url}/api/data/v9.2"
    tokens = EntraTokenSource(
        platform="dynamics_cs",
        title="Dynamics 365 Customer Service",
        scope=scope_of(api_base),
        login_base=f"{url}/login",
        tenant_id=simulator.tenant_id,
        client_id=simulator.client_id,
        client_secret=client_secret or simulator.client_secret,
        http=HttpClient(platform="dynamics_cs", base_url=f"{url}/login", timeout=(5.0, 30.0)),
        clock=clock,
    )
    return DynamicsCases(HttpClient(platform="dynamics_cs", base_url=api_base, timeout=(5.0, 30.0)), tokens, **options)


def seed(simulator: DynamicsCaseSimulator, **request: Any) -> str:
    return simulator.seed_ticket(
        {"payment_provider": "stripe", "payment_id": "pi_" + uuid.uuid4().hex[:10], "approver_role": "team_lead"}
        | request
    )


def update(label: str | None = "completed") -> TicketUpdate:
    marker = f"refundflow:evt_{uuid.uuid4().hex}"
    return TicketUpdate(marker=marker, event="RefundCompleted", label=label, text=f"Refund {label}. [{marker}]")


def api_requests(simulator: DynamicsCaseSimulator) -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if "/api/data/v9.2/" in seen["path"]]


# ---------------------------------------------------------------- tokens


def test_a_token_is_bought_once_and_reused_until_shortly_before_it_expires(desk: Any) -> None:
    simulator, url, clock = desk
    tickets = cases(simulator, url, clock)
    case = seed(simulator)
    tickets.read_ticket(case)
    tickets.has_update(case, "refundflow:none")
    assert simulator.token_grants == 1
    token_request = next(seen for seen in simulator.requests_seen if seen["path"].endswith("/oauth2/v2.0/token"))
    assert f"scope={url.split('://')[0]}%3A%2F%2F" in token_request["body"]  # the environment's origin + /.default
    clock.now += 3599 - 299  # inside Entra ID's hour, past the five-minute margin
    tickets.read_ticket(case)
    assert simulator.token_grants == 2


def test_a_401_buys_a_new_token_once_and_repeats_the_call(desk: Any) -> None:
    simulator, url, clock = desk
    tickets = cases(simulator, url, clock)
    case = seed(simulator)
    tickets.read_ticket(case)
    simulator.revoke_tokens()  # e.g. the application user's token revoked before it expired
    assert tickets.read_ticket(case)["incidentid"] == case
    assert simulator.token_grants == 2


def test_a_refused_client_secret_is_a_final_refusal(desk: Any) -> None:
    simulator, url, clock = desk
    tickets = cases(simulator, url, clock, client_secret="not-the-client-secret-000000")
    with pytest.raises(RejectedError) as refused:
        tickets.read_ticket(seed(simulator))
    assert refused.value.code == "dynamics_cs_credentials"
    assert api_requests(simulator) == []


# ---------------------------------------------------------------- reads and writes


def test_a_case_is_read_with_its_columns_and_customer(desk: Any) -> None:
    simulator, url, clock = desk
    case = seed(simulator, customer_email="ada@example.com", customer_name="Ada Lovelace", amount="12.50")
    read = cases(simulator, url, clock).read_ticket(case.upper())
    assert read["incidentid"] == case
    assert read["new_refundamount"] == "12.50"
    assert read["customerid_contact"] == {"fullname": "Ada Lovelace", "emailaddress1": "ada@example.com"}
    [seen] = api_requests(simulator)
    assert seen["path"] == f"/api/data/v9.2/incidents({case})"  # the GUID lower-cased into the path
    assert seen["headers"]["Odata-Version"] == "4.0"


def test_a_write_back_sets_the_status_column_with_if_match_then_adds_the_note(desk: Any) -> None:
    simulator, url, clock = desk
    case = seed(simulator)
    written = update("issued")
    cases(simulator, url, clock).write_back(case, written)
    patch, post = api_requests(simulator)
    assert (patch["method"], patch["headers"].get("If-Match")) == ("PATCH", "*")  # never an upsert
    assert json.loads(patch["body"]) == {"new_refundstatus": "issued"}
    assert json.loads(post["body"]) == {
        "subject": "Refund status: issued",
        "notetext": written.text,
        "objectid_incident@odata.bind": f"/incidents({case})",
    }
    view = simulator.ticket_view(case)
    assert view["ticket"]["new_refundstatus"] == "issued"
    assert view["notes"] == [written.text]


def test_a_resolved_case_takes_the_note_only_and_shows_its_state_there(desk: Any) -> None:
    # GIVEN a case resolved with its refund approved (Dataverse makes it read-only)
    simulator, url, clock = desk
    case = seed(simulator)
    simulator.agent_action(case, "approve")
    tickets = cases(simulator, url, clock)
    # WHEN the refund's completion is written back
    written = update("completed")
    tickets.write_back(case, written)
    # THEN Dataverse refused the column (CaseAlreadyResolved), the note is there and says the state
    view = simulator.ticket_view(case)
    assert view["ticket"]["new_refundstatus"] is None
    assert view["notes"] == [written.text]
    assert simulator.notes[case][0]["subject"] == "Refund status: completed"
    assert view["labels"] == ["completed"]
    assert tickets.has_update(case, written.marker) is True


def test_a_note_only_update_patches_nothing(desk: Any) -> None:
    simulator, url, clock = desk
    case = seed(simulator)
    cases(simulator, url, clock).write_back(case, update(None))
    assert [seen["method"] for seen in api_requests(simulator)] == ["POST"]
    assert simulator.notes[case][0]["subject"] == "Refund update"
    assert simulator.ticket_view(case)["labels"] == []


def test_without_a_status_column_only_notes_are_written(desk: Any) -> None:
    simulator, url, clock = desk
    case = seed(simulator)
    cases(simulator, url, clock, status_column=None).write_back(case, update("issued"))
    assert [seen["method"] for seen in api_requests(simulator)] == ["POST"]


def test_a_column_the_table_does_not_have_is_a_final_refusal_with_dataverses_words(desk: Any) -> None:
    simulator, url, clock = desk
    case = seed(simulator)
    with pytest.raises(RejectedError) as refused:
        cases(simulator, url, clock, status_column="new_nosuchcolumn").write_back(case, update("issued"))
    assert refused.value.code == "dynamics_cs_0x0"
    assert "new_nosuchcolumn" in str(refused.value)
    assert simulator.notes[case] == []


def test_has_update_follows_next_links_on_its_own_host(desk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    simulator, url, clock = desk
    monkeypatch.setattr(module, "NOTES_PER_PAGE", 2)
    tickets = cases(simulator, url, clock)
    case = seed(simulator)
    written = [update(None) for _ in range(5)]
    for item in written:
        tickets.write_back(case, item)
    before = len(api_requests(simulator))
    assert tickets.has_update(case, written[-1].marker) is True
    pages = api_requests(simulator)[before:]
    assert len(pages) == 3
    assert all(seen["headers"].get("Prefer") == "odata.maxpagesize=2" for seen in pages)
    assert tickets.has_update(case, update().marker) is False


# ---------------------------------------------------------------- failures


def test_the_service_protection_limit_is_transient_with_its_retry_after(desk: Any) -> None:
    simulator, url, clock = desk
    case = seed(simulator)
    simulator.requests_per_window = 1
    tickets = cases(simulator, url, clock)
    tickets.read_ticket(case)
    with pytest.raises(TransientError) as limited:
        tickets.read_ticket(case)
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after_seconds == 301.0  # the window's first call leaves it in 300 s
    assert "0x80072322" in str(limited.value)
    clock.now += 301
    assert tickets.read_ticket(case)["incidentid"] == case


def test_an_unknown_case_is_not_found_on_a_read_and_on_a_write_and_nothing_is_created(desk: Any) -> None:
    simulator, url, clock = desk
    tickets = cases(simulator, url, clock)
    with pytest.raises(NotFound):
        tickets.read_ticket(UNKNOWN_CASE)
    with pytest.raises(NotFound):
        tickets.write_back(UNKNOWN_CASE, update())
    assert simulator.cases == {}


def test_a_server_error_on_a_write_is_an_unknown_outcome_and_on_a_read_transient(desk: Any) -> None:
    simulator, url, clock = desk
    case = seed(simulator)
    tickets = cases(simulator, url, clock)
    simulator.inject_fault("write_back", "server_error")
    with pytest.raises(OutcomeUnknownError):
        tickets.write_back(case, update())
    simulator.inject_fault("read_ticket", "server_error")
    with pytest.raises(TransientError):
        tickets.read_ticket(case)


# ---------------------------------------------------------------- configuration


def test_the_scope_is_the_environments_origin() -> None:
    assert scope_of("https://contoso.crm4.dynamics.com/api/data/v9.2") == "https://contoso.crm4.dynamics.com/.default"


@pytest.mark.parametrize(
    "secret",
    [{}, {"tenant_id": "t", "client_id": "c"}, {"tenant_id": "t/..", "client_id": "c", "client_secret": "s"}],
)
def test_a_secret_without_the_client_credentials_is_a_configuration_error(secret: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        _build(DynamicsCaseSettings(), "refundflow/dynamics_cs", secret)


def test_a_status_column_that_is_no_logical_name_is_a_configuration_error() -> None:
    config = DynamicsCaseSettings.model_validate({"DYNAMICS_CS_REFUND_STATUS_COLUMN": "New Refund Status"})
    with pytest.raises(ConfigurationError):
        _build(config, "s", {"tenant_id": "t", "client_id": "c", "client_secret": "s"})


def test_settings_build_a_connector_with_the_merchants_extra_columns() -> None:
    config = DynamicsCaseSettings.model_validate({"DYNAMICS_CS_CASE_COLUMNS": "new_shopifyorder, new_region"})
    built = _build(config, "s", {"tenant_id": "t", "client_id": "c", "client_secret": "s"})
    assert built.columns[-2:] == ("new_shopifyorder", "new_region")
    assert built.tokens.scope == "https://example.crm.dynamics.com/.default"


def test_a_second_401_after_a_fresh_token_is_a_final_refusal(desk: Any) -> None:
    # GIVEN an application user Dataverse refuses even with a fresh token (e.g. removed from the environment)
    simulator, url, clock = desk
    case = seed(simulator)
    simulator.add_fault(FaultRule(method="GET", path=r"/incidents\(", status=401, times=2))
    # WHEN the case is read THEN one new token is bought, the call repeated once, and the refusal is final
    with pytest.raises(RejectedError) as refused:
        cases(simulator, url, clock).read_ticket(case)
    assert refused.value.code == "provider_authentication_failed"
    assert simulator.token_grants == 2
    assert len(api_requests(simulator)) == 2


def test_a_next_link_to_another_host_is_never_followed(desk: Any) -> None:
    # GIVEN an answer whose next page is on a host that is not the environment's
    simulator, url, clock = desk
    case = seed(simulator)
    page = {"value": [], "@odata.nextLink": "https://attacker.example/api/data/v9.2/annotations?$skiptoken=2"}
    simulator.add_fault(FaultRule(method="GET", path=r"/annotations$", status=200, body=page))
    # WHEN the notes are searched THEN the search ends there: our token never goes to that host
    assert cases(simulator, url, clock).has_update(case, update().marker) is False
    assert len(api_requests(simulator)) == 1
