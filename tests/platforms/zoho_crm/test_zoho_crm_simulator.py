"""The Zoho CRM simulator holds the connector to Zoho's rules: OAuth, field and picklist names, notes, paging,
its error bodies, the workflow rule's webhook, and record ids no card scanner takes for a card number."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from local.simulators.zoho_crm import ZohoCrmSimulator
from refundflow import carddata
from tests.support.servers import DeliveryRecorder

Served = tuple[ZohoCrmSimulator, str, DeliveryRecorder]


def token(url: str, simulator: ZohoCrmSimulator) -> str:
    answer = requests.post(
        f"{url}/accounts/oauth/v2/token",
        data={**simulator.local_secrets()["api"], "grant_type": "refresh_token"},
        timeout=5,
    )
    return str(answer.json()["access_token"])


def call(
    url: str, simulator: ZohoCrmSimulator, method: str, path: str, body: Any = None, **options: Any
) -> requests.Response:
    headers = {"Authorization": f"Zoho-oauthtoken {token(url, simulator)}", **options.pop("headers", {})}
    return requests.request(method, f"{url}/crm/v8{path}", json=body, headers=headers, timeout=5, **options)


def seed(simulator: ZohoCrmSimulator) -> str:
    return simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "agent"})


def error_of(answer: requests.Response) -> dict[str, Any]:
    body = answer.json()
    return dict(body["data"][0]) if "data" in body else dict(body)


@pytest.mark.parametrize(
    ("grant", "error"),
    [
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"refresh_token": "1000.wrong"}, "invalid_code"),
    ],
)
def test_a_refused_grant_is_an_error_with_http_200(served: Served, grant: dict[str, str], error: str) -> None:
    simulator, url, _ = served
    data = {**simulator.local_secrets()["api"], "grant_type": "refresh_token", **grant}
    answer = requests.post(f"{url}/accounts/oauth/v2/token", data=data, timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"error": error})


@pytest.mark.parametrize("authorization", [None, "Bearer x", "Zoho-oauthtoken 1000.unknown"])
def test_a_call_without_a_valid_token_is_a_401_invalid_token(served: Served, authorization: str | None) -> None:
    simulator, url, _ = served
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.get(f"{url}/crm/v8/Deals/{seed(simulator)}", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["code"] == "INVALID_TOKEN"


def test_an_unknown_record_reads_as_204_and_an_unknown_path_as_invalid_url_pattern(served: Served) -> None:
    simulator, url, _ = served
    assert call(url, simulator, "GET", "/Deals/110000000000000999").status_code == 204
    wrong_module = call(url, simulator, "GET", "/Potentials/110000000000000999")
    assert (wrong_module.status_code, wrong_module.json()["code"]) == (400, "INVALID_MODULE")
    wrong_path = call(url, simulator, "GET", "/Deals/1/2/3")
    assert (wrong_path.status_code, wrong_path.json()["code"]) == (404, "INVALID_URL_PATTERN")


@pytest.mark.parametrize(
    ("fields", "api_name"),
    [
        ({"Refund_Stauts": "issued"}, "Refund_Stauts"),
        ({"Refund_Status": "Issued"}, "Refund_Status"),
        ({"Stage": "Refunded"}, "Stage"),
        ({"Modified_Time": "2026-01-01T00:00:00+00:00"}, "Modified_Time"),
        ({"Refund_Status": 3}, "Refund_Status"),
    ],
)
def test_an_update_zoho_would_refuse_is_invalid_data_naming_the_field(
    served: Served, fields: dict[str, Any], api_name: str
) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    answer = call(url, simulator, "PUT", f"/Deals/{deal}", {"data": [fields], "trigger": []})
    assert answer.status_code == 400
    error = error_of(answer)
    assert (error["code"], error["details"]["api_name"], error["status"]) == ("INVALID_DATA", api_name, "error")
    assert simulator.ticket_view(deal)["labels"] == []


def test_an_update_of_an_unknown_record_names_the_id(served: Served) -> None:
    simulator, url, _ = served
    answer = call(url, simulator, "PUT", "/Deals/110000000000000999", {"data": [{"Refund_Status": "issued"}]})
    error = error_of(answer)
    assert (answer.status_code, error["code"], error["details"]) == (400, "INVALID_DATA", {"id": "110000000000000999"})


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"data": []}, "MANDATORY_NOT_FOUND"),
        ({"data": [{}], "trigger_me": 1}, "INVALID_DATA"),
        ({"rows": [{}]}, "INVALID_DATA"),
    ],
)
def test_a_body_of_another_shape_is_refused(served: Served, body: dict[str, Any], code: str) -> None:
    simulator, url, _ = served
    answer = call(url, simulator, "PUT", f"/Deals/{seed(simulator)}", body)
    assert (answer.status_code, error_of(answer)["code"]) == (400, code)


def test_a_body_that_is_not_json_is_refused(served: Served) -> None:
    simulator, url, _ = served
    answer = call(
        url,
        simulator,
        "PUT",
        f"/Deals/{seed(simulator)}",
        data=b"data=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    ("note", "code", "api_name"),
    [
        ({"Note_Title": "x"}, "MANDATORY_NOT_FOUND", "Note_Content"),
        (
            {"Note_Content": "x", "Parent_Id": {"module": {"api_name": "Leads"}, "id": "PARENT"}},
            "INVALID_DATA",
            "Parent_Id",
        ),
        (
            {"Note_Content": "x", "Parent_Id": {"module": {"api_name": "Deals"}, "id": "110000000000000999"}},
            "INVALID_DATA",
            "Parent_Id",
        ),
        (
            {"Note_Content": "x", "Parent_Id": {"module": {"api_name": "Deals"}, "id": "PARENT"}, "Private": True},
            "INVALID_DATA",
            "Private",
        ),
    ],
)
def test_a_note_zoho_would_refuse_is_refused_and_not_stored(
    served: Served, note: dict[str, Any], code: str, api_name: str
) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    note = json.loads(json.dumps(note).replace("PARENT", deal))
    answer = call(url, simulator, "POST", "/Notes", {"data": [note]})
    error = error_of(answer)
    assert (answer.status_code, error["code"], error["details"]["api_name"]) == (400, code, api_name)
    assert simulator.notes[deal] == []


def test_notes_need_their_fields_and_a_page_size_zoho_allows(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    missing = call(url, simulator, "GET", f"/Deals/{deal}/Notes")
    assert (missing.status_code, missing.json()["code"]) == (400, "REQUIRED_PARAM_MISSING")
    too_many = call(url, simulator, "GET", f"/Deals/{deal}/Notes", params={"fields": "Note_Content", "per_page": 201})
    assert too_many.status_code == 400
    assert call(url, simulator, "GET", f"/Deals/{deal}/Notes", params={"fields": "Note_Content"}).status_code == 204


def test_notes_are_listed_with_the_fields_asked_for_and_more_records(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    parent = {"module": {"api_name": "Deals"}, "id": deal}
    created = call(
        url, simulator, "POST", "/Notes", {"data": [{"Note_Content": f"n{i}", "Parent_Id": parent} for i in range(3)]}
    )
    assert created.status_code == 201
    assert [item["status"] for item in created.json()["data"]] == ["success"] * 3
    page = call(url, simulator, "GET", f"/Deals/{deal}/Notes", params={"fields": "Note_Content", "per_page": 2}).json()
    assert [note["Note_Content"] for note in page["data"]] == ["n0", "n1"]
    assert "Note_Title" not in page["data"][0]
    assert page["info"]["more_records"] is True


def test_the_rate_limit_answers_429_with_its_wait(served: Served) -> None:
    simulator, url, _ = served
    deal = seed(simulator)
    access = token(url, simulator)
    simulator.rate_limit_per_minute = 1
    try:
        answers = [
            requests.get(
                f"{url}/crm/v8/Deals/{deal}", headers={"Authorization": f"Zoho-oauthtoken {access}"}, timeout=5
            )
            for _ in range(2)
        ]
    finally:
        simulator.rate_limit_per_minute = 500
    assert answers[0].status_code == 200
    assert answers[1].status_code == 429
    assert answers[1].json()["code"] == "TOO_MANY_REQUESTS"
    assert int(answers[1].headers["Retry-After"]) == answers[1].json()["details"]["retry_after"] >= 1


def test_a_change_of_the_refund_action_runs_the_workflow_unless_the_update_says_none(served: Served) -> None:
    simulator, url, receiver = served
    deal = seed(simulator)
    call(url, simulator, "PUT", f"/Deals/{deal}", {"data": [{"Refund_Action": "Requested"}], "trigger": []})
    call(url, simulator, "PUT", f"/Deals/{deal}", {"data": [{"Refund_Status": "requested"}]})  # no action change
    call(url, simulator, "PUT", f"/Deals/{deal}", {"data": [{"Refund_Action": "Approved"}]})  # workflows run
    receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    simulator.webhooks.wait_idle(timeout=10)
    [(headers, body)] = receiver.deliveries
    sent = json.loads(body)
    assert (sent["record_id"], sent["refund_action"], sent["module"]) == (deal, "Approved", "Deals")
    assert headers["X-Refundflow-Token"] == simulator.webhook_token


def test_modified_time_moves_on_at_every_change(served: Served) -> None:
    simulator, _, _ = served
    deal = seed(simulator)
    times = [simulator.deals[deal]["Modified_Time"]]
    for intent in ("request", "approve", "withdraw"):
        simulator.agent_action(deal, intent)
        times.append(simulator.deals[deal]["Modified_Time"])
    assert times == sorted(set(times))


def test_record_ids_are_18_digits_from_1_and_never_read_as_card_numbers(served: Served) -> None:
    simulator, _, _ = served
    ids = [seed(simulator) for _ in range(30)]
    ids += list(simulator.contacts)
    assert all(len(record_id) == 18 and record_id.startswith("1") and record_id.isdigit() for record_id in ids)
    assert all(carddata.find_in_text(record_id) is None for record_id in ids)


def test_the_sandbox_refuses_what_it_does_not_know(served: Served) -> None:
    simulator, _, _ = served
    with pytest.raises(ValueError, match="payment_id"):
        simulator.seed_ticket({"payment_provider": "stripe"})
    with pytest.raises(ValueError, match="approver_role"):
        simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "boss"})
    with pytest.raises(ValueError, match="intent"):
        simulator.agent_action(seed(simulator), "escalate")
    with pytest.raises(ValueError, match="operation"):
        simulator.inject_fault("delete_ticket", "transient")
