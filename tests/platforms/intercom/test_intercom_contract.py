"""Every request IntercomConversations sends, and every answer the simulator gives it, validated against Intercom's
official OpenAPI description 2.16 (../shared/contracts/intercom-api-v2.16.yaml, intercom/Intercom-OpenAPI) with
openapi-core: the connector is driven against the simulator (read, write-back, has_update, an error), the
simulator records what it received, and each exchange is rebuilt on Intercom's real server URL."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.exceptions import OpenAPIError

from local.simulators.intercom import IntercomSimulator
from refundflow.errors import NotFound
from refundflow.platforms.intercom.connector import IntercomConversations
from refundflow.ports import TicketUpdate
from refundflow.status import RefundStatus
from tests.conftest import CONTRACTS
from tests.contract.conftest import require_contracts

SPEC = "intercom-api-v2.16.yaml"
SERVER = "https://api.intercom.io"
REQUEST = {
    "payment_provider": "stripe",
    "payment_id": "pi_3PqIntercom000001",
    "amount": "49.90",
    "currency": "EUR",
    "approver_role": "team_lead",
}


@cache
def _spec(path: str) -> OpenAPI:
    return OpenAPI.from_file_path(path, config=Config(spec_validator_cls=None))


@pytest.fixture
def spec() -> OpenAPI:
    return _spec(str(require_contracts(CONTRACTS, os.environ, SPEC) / SPEC))


def as_intercom_request(seen: dict[str, Any]) -> requests.Request:
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    url = f"{SERVER}{seen['path']}" + (f"?{seen['query']}" if seen["query"] else "")
    return requests.Request(seen["method"], url, headers=headers, data=seen["body"].encode() if seen["body"] else None)


def drive(simulator: IntercomSimulator, intercom: IntercomConversations) -> str:
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(conversation_id, "approve")
    intercom.read_ticket(conversation_id)
    update = TicketUpdate(
        marker="refundflow:evt-1",
        refund_id="rf_1",
        event="RefundIssued",
        status=RefundStatus.REFUNDED,
        label="issued",
        text="Refund issued: 49.90 EUR. [refundflow:evt-1]",
    )
    intercom.write_back(conversation_id, update)
    intercom.has_update(conversation_id, "refundflow:evt-1")
    return conversation_id


def test_every_request_the_connector_sends_is_one_the_spec_defines(
    simulator: IntercomSimulator, intercom: IntercomConversations, spec: OpenAPI
) -> None:
    # GIVEN the connector has read, written back and looked for its marker
    drive(simulator, intercom)
    seen = list(simulator.requests_seen)
    assert {(request["method"], request["path"].split("/")[1]) for request in seen} == {
        ("GET", "conversations"),
        ("GET", "contacts"),
        ("PUT", "conversations"),
        ("GET", "me"),
        ("POST", "conversations"),
    }
    # THEN each, on Intercom's server, is valid for the spec (path, parameters, headers, JSON body)
    for request in seen:
        spec.validate_request(RequestsOpenAPIRequest(as_intercom_request(request)))


def test_the_note_is_the_specs_admin_reply_with_a_string_admin_id(
    simulator: IntercomSimulator, intercom: IntercomConversations, spec: OpenAPI
) -> None:
    import json

    drive(simulator, intercom)
    [reply] = [request for request in simulator.requests_seen if request["path"].endswith("/reply")]
    body = json.loads(reply["body"])
    assert set(body) == {"message_type", "type", "admin_id", "body"}
    assert (body["message_type"], body["type"], body["admin_id"]) == ("note", "admin", "991267001")
    [put] = [request for request in simulator.requests_seen if request["method"] == "PUT"]
    assert json.loads(put["body"]) == {"custom_attributes": {"refund_status": "issued"}}


def test_a_request_off_the_spec_is_caught(spec: OpenAPI) -> None:
    # The check is not vacuous: a reply with an unknown message type breaks the spec.
    bad = {
        "method": "POST",
        "path": "/conversations/123/reply",
        "query": "",
        "headers": {"Content-Type": "application/json", "Authorization": "Bearer x"},
        "body": '{"message_type": "memo", "type": "admin", "admin_id": "1", "body": "x"}',
    }
    with pytest.raises(OpenAPIError, match="memo"):
        spec.validate_request(RequestsOpenAPIRequest(as_intercom_request(bad)))


def test_every_answer_of_the_simulator_has_the_specs_shape(
    served: tuple[IntercomSimulator, str], simulator: IntercomSimulator, intercom: IntercomConversations, spec: OpenAPI
) -> None:
    # GIVEN the same exchanges replayed against the simulator, and an unknown conversation's 404
    conversation_id = drive(simulator, intercom)
    with pytest.raises(NotFound):
        intercom.read_ticket("999999999")
    _, url = served
    for seen in list(simulator.requests_seen):
        request = as_intercom_request(seen)
        local = requests.Request(
            request.method, request.url.replace(SERVER, url), headers=request.headers, data=request.data
        )
        answer = requests.Session().send(local.prepare(), timeout=5)
        answer.request.url = request.url  # validated as Intercom's own answer
        # THEN the answer (conversation, contact, admin, error list) validates against the spec's response
        spec.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer))
    assert conversation_id in simulator.conversations
