"""Zoho CRM's connector against the simulator: OAuth tokens (cached, bought again when they expire or on a 401),
the record and its contact, the field update and note, Zoho's errors and rate limit."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from local.simulators.base import FaultRule
from local.simulators.zoho_crm import ZohoCrmSimulator
from refundflow.connectors.http import HttpResponse
from refundflow.errors import ConfigurationError, NotFound, OutcomeUnknownError, RejectedError, TransientError
from refundflow.platforms.zoho_crm import connector as module
from refundflow.platforms.zoho_crm.connector import ZohoCrmRecords, ZohoCrmSettings, parse_stages
from refundflow.ports import TicketUpdate
from tests.platforms.zoho_crm.conftest import Clock, records
from tests.support.servers import DeliveryRecorder

Served = tuple[ZohoCrmSimulator, str, DeliveryRecorder]


def seed(simulator: ZohoCrmSimulator, **request: Any) -> str:
    return simulator.seed_ticket(
        {"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "team_lead", **request}
    )


def update(label: str | None = "issued") -> TicketUpdate:
    marker = f"refundflow:evt_{uuid.uuid4().hex}"
    return TicketUpdate(marker=marker, refund_id="rf_1", event="RefundIssued", label=label, text=f"Refund. [{marker}]")


def api_calls(simulator: ZohoCrmSimulator, method: str, path_part: str) -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if seen["method"] == method and path_part in seen["path"]]


# ------------------------------------------------------------ tokens


def test_an_access_token_is_bought_once_and_kept_until_shortly_before_it_expires(served: Served) -> None:
    simulator, url, _ = served
    clock = Clock()
    crm = records(url, simulator.local_secrets()["api"], clock=clock)
    deal = seed(simulator)
    crm.read_ticket(deal)
    crm.read_ticket(deal)
    assert simulator.token_grants == 1
    clock.now += 3600 - 301  # still more than the margin left
    crm.read_ticket(deal)
    assert simulator.token_grants == 1
    clock.now += 2  # within five minutes of expiry: a new one
    crm.read_ticket(deal)
    assert simulator.token_grants == 2


def test_a_401_buys_a_new_token_once_and_repeats_the_call(served: Served) -> None:
    simulator, url, _ = served
    crm = records(url, simulator.local_secrets()["api"])
    deal = seed(simulator)
    crm.read_ticket(deal)
    simulator.expire_access_tokens()  # revoked (or expired early) at Zoho
    assert crm.read_ticket(deal)["id"] == deal
    assert simulator.token_grants == 2
    assert [seen["path"] for seen in api_calls(simulator, "GET", f"/Deals/{deal}")][-2:] == [
        f"/crm/v8/Deals/{deal}"
    ] * 2


def test_a_refused_refresh_token_asks_for_a_reconnect(served: Served) -> None:
    simulator, url, _ = served
    secret = {**simulator.local_secrets()["api"], "refresh_token": "1000.revoked"}
    with pytest.raises(RejectedError) as refused:
        records(url, secret).read_ticket(seed(simulator))
    assert refused.value.code == "zoho_reconnect_required"


def test_a_secret_without_a_client_secret_is_a_configuration_error(served: Served) -> None:
    simulator, url, _ = served
    secret = {key: value for key, value in simulator.local_secrets()["api"].items() if key != "client_secret"}
    with pytest.raises(ConfigurationError):
        records(url, secret).read_ticket(seed(simulator))


# ------------------------------------------------------------ reads


def test_a_record_is_read_with_its_contact_as_requester(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator, customer_email="ada@example.com", customer_name="Ada Lovelace", amount="12.50")
    record = records(url, simulator.local_secrets()["api"]).read_ticket(deal)
    assert record["id"] == deal
    assert record["Refund_Amount"] == "12.50"
    assert record["requester"]["email"] == "ada@example.com"
    assert record["requester"]["name"] == "Ada Lovelace"
    assert record["Owner"]["id"] == "110000000000000101"


def test_a_record_whose_contact_is_gone_is_still_read(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    simulator.contacts.clear()
    assert records(url, simulator.local_secrets()["api"]).read_ticket(deal)["requester"] is None


def test_a_wrong_base_url_is_a_refusal_not_a_missing_record(served: Served) -> None:
    simulator, url, _ = served
    crm = records(url, simulator.local_secrets()["api"])
    crm.http.base_url = f"{url}/crm/v2x"
    with pytest.raises(RejectedError) as refused:
        crm.read_ticket(seed(simulator))
    assert not isinstance(refused.value, NotFound)
    assert refused.value.code == "zoho_crm_invalid_url_pattern"


def test_the_rate_limit_is_transient_with_zohos_wait(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    simulator.rate_limit_per_minute = 2  # the token grant is not an API call
    crm = records(url, simulator.local_secrets()["api"])
    try:
        crm.read_ticket(deal)  # the record and its contact
        with pytest.raises(TransientError) as limited:
            crm.read_ticket(deal)
    finally:
        simulator.rate_limit_per_minute = 500
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after_seconds is not None
    assert 1 <= limited.value.retry_after_seconds <= 60


@pytest.mark.parametrize(
    ("headers", "body", "wait"),
    [
        ({"Retry-After": "7"}, {"code": "TOO_MANY_REQUESTS", "details": {"retry_after": 30}}, 7.0),
        ({}, {"code": "TOO_MANY_REQUESTS", "details": {"retry_after": 30}, "message": "", "status": "error"}, 30.0),
        ({}, {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "", "status": "error"}, 60.0),
        ({}, b"<html>busy</html>", 60.0),
    ],
)
def test_the_rate_limits_wait_comes_from_the_header_then_the_body(
    headers: dict[str, str], body: Any, wait: float
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert module._rate_limit_wait(HttpResponse(status=429, headers=headers, body=raw)) == wait


def test_a_server_error_on_a_read_is_transient_and_on_a_write_an_unknown_outcome(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    crm = records(url, simulator.local_secrets()["api"])
    simulator.add_fault(FaultRule(method="GET", path=r"^/crm/v8/Deals/[0-9]+$", status=500))
    with pytest.raises(TransientError):
        crm.read_ticket(deal)
    simulator.add_fault(FaultRule(method="PUT", path=r"^/crm/v8/Deals/[0-9]+$", status=500))
    with pytest.raises(OutcomeUnknownError):
        crm.write_back(deal, update())


def test_a_success_status_without_a_record_answer_is_never_taken_for_a_write(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    simulator.add_fault(FaultRule(method="POST", path=r"^/crm/v8/Notes$", status=200, body={"data": []}))
    with pytest.raises(TransientError):
        records(url, simulator.local_secrets()["api"]).write_back(deal, update())


# ------------------------------------------------------------ writes


def test_a_write_back_sets_the_status_and_stage_without_running_workflows_then_adds_the_note(served: Served) -> None:
    simulator, url, receiver = served
    deal = seed(simulator)
    simulator.agent_action(deal, "approve")
    receiver.wait_until(lambda deliveries: len(deliveries) == 1)
    crm = records(url, simulator.local_secrets()["api"], stages=parse_stages("issued=Refund Issued"))
    written = update("issued")
    crm.write_back(deal, written)
    [put] = api_calls(simulator, "PUT", f"/Deals/{deal}")
    assert json.loads(put["body"]) == {"data": [{"Refund_Status": "issued", "Stage": "Refund Issued"}], "trigger": []}
    view = simulator.ticket_view(deal)
    assert view["ticket"]["Stage"] == "Refund Issued"
    assert view["labels"] == ["issued"]
    assert [note for note in view["notes"] if written.marker in note]
    [note] = simulator.notes[deal]
    assert note["Parent_Id"] == {"module": {"api_name": "Deals"}, "id": deal}
    # our own update fired no workflow: only the agent's action was delivered
    simulator.webhooks.wait_idle(timeout=10)
    assert len(receiver.deliveries) == 1


def test_a_label_without_a_stage_leaves_the_stage_alone(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    records(url, simulator.local_secrets()["api"], stages={"failed": "Refund Failed"}).write_back(
        deal, update("issued")
    )
    assert simulator.ticket_view(deal)["ticket"]["Stage"] == "Closed Won"


def test_a_note_only_update_writes_no_field(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    records(url, simulator.local_secrets()["api"], stages={"issued": "Refund Issued"}).write_back(deal, update(None))
    assert api_calls(simulator, "PUT", "/Deals/") == []
    assert len(simulator.notes[deal]) == 1


def test_a_status_value_the_picklist_lacks_is_refused_in_zohos_words(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    with pytest.raises(RejectedError) as refused:
        records(url, simulator.local_secrets()["api"]).write_back(deal, update("unheard_of"))
    assert refused.value.code == "zoho_crm_invalid_data"
    assert "INVALID_DATA" in refused.value.message
    assert simulator.notes[deal] == []


def test_a_status_field_the_module_lacks_is_refused(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    with pytest.raises(RejectedError):
        records(url, simulator.local_secrets()["api"], status_field="Refund_State").write_back(deal, update())


def test_has_update_pages_through_the_notes(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    crm = records(url, simulator.local_secrets()["api"], status_field=None)
    for _ in range(3):
        crm.write_back(deal, update(None))
    last = update(None)
    crm.write_back(deal, last)
    module_pages = module.NOTES_PER_PAGE
    module.NOTES_PER_PAGE = 2
    try:
        assert crm.has_update(deal, last.marker) is True
    finally:
        module.NOTES_PER_PAGE = module_pages
    pages = [seen["query"] for seen in api_calls(simulator, "GET", f"/Deals/{deal}/Notes")]
    assert len(pages) == 2
    assert "page=2" in pages[-1]


def test_a_record_without_notes_has_no_update(served: Served) -> None:
    simulator, url, _ = served
    assert records(url, simulator.local_secrets()["api"]).has_update(seed(simulator), "refundflow:x") is False


# ------------------------------------------------------------ settings


def test_cases_update_their_status_as_the_stage() -> None:
    crm = ZohoCrmRecords(tokens=None, http=None, module="Cases")  # type: ignore[arg-type]
    assert crm.stage_field == "Status"
    with pytest.raises(ConfigurationError):
        ZohoCrmRecords(tokens=None, http=None, module="Leads")  # type: ignore[arg-type]


def test_stages_are_label_equals_value_pairs() -> None:
    assert parse_stages(" issued=Refund Issued , failed=Refund Failed ") == {
        "issued": "Refund Issued",
        "failed": "Refund Failed",
    }
    assert parse_stages("") == {}
    for wrong in ("issued", "Issued=Won", "issued=a=b"):
        with pytest.raises(ConfigurationError):
            parse_stages(wrong)


def test_the_factory_builds_from_the_settings_and_refuses_an_incomplete_secret() -> None:
    environment = {
        "ZOHO_CRM_MODULE": "Cases",
        "ZOHO_CRM_STAGES": "completed=Closed",
        "ZOHO_CRM_API_BASE": "https://www.zohoapis.eu/crm/v8",
    }
    config = ZohoCrmSettings.model_validate(environment)
    built = module._build(config, "zoho_crm", {"client_id": "1", "client_secret": "2", "refresh_token": "3"})
    assert (built.module, built.stage_field, built.stages) == ("Cases", "Status", {"completed": "Closed"})
    assert built.http.base_url == "https://www.zohoapis.eu/crm/v8"
    with pytest.raises(ConfigurationError):
        module._build(config, "zoho_crm", {"client_id": "1", "client_secret": "2"})
    spaced = ZohoCrmSettings.model_validate({**environment, "ZOHO_CRM_REFUND_STATUS_FIELD": "Refund Status"})
    with pytest.raises(ConfigurationError):
        module._build(spaced, "zoho_crm", {"client_id": "1", "client_secret": "2", "refresh_token": "3"})
