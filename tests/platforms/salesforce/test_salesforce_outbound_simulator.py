"""The simulator's Outbound Messages: what the org sends is what our verifier accepts, the token rides in the URL
(never in a header), and an answer that is not the SOAP Ack is sent again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from local.simulators.base import WebhookSender
from local.simulators.salesforce import SECRET_HEADER, SalesforceSimulator
from refundflow.errors import RefundflowError
from refundflow.platforms.salesforce.inbound import SalesforceInbound
from tests.support.servers import serve_wsgi


class Endpoint:
    """Our webhook endpoint in miniature: the real Salesforce verifier over what arrives, or a fixed JSON answer."""

    def __init__(self, verification: dict[str, Any], *, acknowledge: bool = True) -> None:
        self.verification = verification
        self.acknowledge = acknowledge
        self.received: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        query = dict(parse_qsl(request.query_string.decode()))
        headers = dict(request.headers)
        try:
            delivery = SalesforceInbound().verify_request(headers, request.get_data(), self.verification, query)
        except RefundflowError as refused:
            self.received.append({"headers": headers, "refused": refused.message})
            return Response(refused.message, status=401)(environ, start_response)
        self.received.append({"headers": headers, "query": query, "tickets": delivery.tickets})
        if not self.acknowledge:
            return Response("{}", status=200, mimetype="application/json")(environ, start_response)
        answer = delivery.answer
        return Response(answer.body, status=answer.status, content_type=answer.content_type)(environ, start_response)


@pytest.fixture
def simulator() -> SalesforceSimulator:
    org = SalesforceSimulator(trigger="outbound_message")
    org.webhooks = WebhookSender(org.sign_webhook, retries=2, backoff=0.01)  # retried quickly, the same way
    return org


def seed(org: SalesforceSimulator) -> str:
    return org.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "team_lead"})


def test_an_agents_action_sends_an_outbound_message_our_verifier_accepts_and_acks(
    simulator: SalesforceSimulator,
) -> None:
    # GIVEN the org sending Outbound Messages to an endpoint that verifies them with the org's local secrets
    endpoint = Endpoint(simulator.local_secrets()["verification"])
    with serve_wsgi(endpoint) as url:
        simulator.send_webhooks_to(url)
        case_id = seed(simulator)
        # WHEN the agent approves the refund in the case
        simulator.agent_action(case_id, "approve")
        assert simulator.webhooks.wait_idle(timeout=30)
    # THEN one message arrived, verified: text/xml, the token in the URL, no secret header, news about the case
    [received] = endpoint.received
    assert "refused" not in received, received
    lowered = {key.lower(): value for key, value in received["headers"].items()}
    assert lowered["content-type"].startswith("text/xml")
    assert SECRET_HEADER.lower() not in lowered
    assert received["query"] == {"token": simulator.outbound_token}
    [news] = received["tickets"]
    assert news.ticket_id == case_id
    assert news.payload["sObject"]["Refund_Action__c"] == "Approved"
    # AND the org took our answer for its Ack: delivered at the first attempt
    [delivery] = simulator.webhooks.deliveries
    assert delivery.delivered
    assert delivery.attempts == 1


def test_an_answer_that_is_not_the_soap_ack_is_sent_again(simulator: SalesforceSimulator) -> None:
    endpoint = Endpoint(simulator.local_secrets()["verification"], acknowledge=False)
    with serve_wsgi(endpoint) as url:
        simulator.send_webhooks_to(url)
        simulator.agent_action(seed(simulator), "request")
        assert simulator.webhooks.wait_idle(timeout=30)
    [delivery] = simulator.webhooks.deliveries
    assert not delivery.delivered
    assert delivery.attempts == 3
    # every attempt is the same notification (its id is what makes the redeliveries one event)
    assert len({news.event_id for item in endpoint.received for news in item["tickets"]}) == 1


def test_the_trigger_control_route_switches_between_callout_and_outbound_message() -> None:
    org = SalesforceSimulator()
    org.send_webhooks_to("http://127.0.0.1:9/webhooks/salesforce")
    with serve_wsgi(org) as url:
        assert org.webhooks.url == "http://127.0.0.1:9/webhooks/salesforce"
        answer = requests.post(f"{url}/_control/trigger", json={"trigger": "outbound_message"}, timeout=5)
        assert answer.json() == {"trigger": "outbound_message"}
        assert org.webhooks.url == f"http://127.0.0.1:9/webhooks/salesforce?token={org.outbound_token}"
        refused = requests.post(f"{url}/_control/trigger", json={"trigger": "platform_event"}, timeout=5)
        assert refused.status_code == 400
        requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    assert org.trigger == "callout"
    assert org.webhooks.url == "http://127.0.0.1:9/webhooks/salesforce"
