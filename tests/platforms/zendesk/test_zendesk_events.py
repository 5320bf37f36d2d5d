"""The samples in events/zendesk/ are what the code reads: a trigger's signed delivery, a ticket as the API answers
it (read under the default mapping), and a write-back record as the help desk's FIFO queue hands it over."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from local.simulators.zendesk import DEFAULT_SIGNING_SECRET
from refundflow.connectors.http import HttpClient
from refundflow.domain.tickets import Intent, ticket_request
from refundflow.events import RefundEvent
from refundflow.models import RefundRequestBody
from refundflow.money import Money
from refundflow.platforms.zendesk.connector import ZendeskTickets
from refundflow.platforms.zendesk.inbound import ZendeskInbound
from tests.conformance.ticket_suite import default_mapping
from tests.support.servers import serve_wsgi

EVENTS = Path(__file__).resolve().parents[3] / "events" / "zendesk"


def sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return document


def test_the_trigger_sample_verifies_with_the_local_signing_secret_at_its_time() -> None:
    delivery = sample("trigger_refund_approved.json")
    sent = datetime.fromisoformat(delivery["headers"]["X-Zendesk-Webhook-Signature-Timestamp"].replace("Z", "+00:00"))
    inbound = ZendeskInbound(now=lambda: sent)
    verified = inbound.verify(
        delivery["headers"], delivery["body"].encode(), {"signing_secrets": [DEFAULT_SIGNING_SECRET]}
    )
    assert [(news.ticket_id, news.event_id) for news in verified.tickets] == [("4711", "8350205582")]


def test_the_ticket_sample_read_through_the_connector_is_a_team_leads_approval() -> None:
    answer = json.dumps(sample("api_ticket_with_users.json"))

    def api(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        found = request.path == "/api/v2/tickets/4711" and request.args.get("include") == "users"
        return Response(answer if found else "{}", status=200 if found else 404, mimetype="application/json")(
            environ, start_response
        )

    with serve_wsgi(api) as url:
        ticket = ZendeskTickets(HttpClient(platform="zendesk", base_url=url)).read_ticket("4711")
    delivery = sample("trigger_refund_approved.json")
    news = ZendeskInbound(
        now=lambda: datetime.fromisoformat(
            delivery["headers"]["X-Zendesk-Webhook-Signature-Timestamp"].replace("Z", "+00:00")
        )
    ).verify(delivery["headers"], delivery["body"].encode(), {"signing_secrets": [DEFAULT_SIGNING_SECRET]})
    intent, request = ticket_request(news.tickets[0], ticket, default_mapping("zendesk"))
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert (request.payment.payment_id, request.amount) == ("pi_3QexamplePayment01", Money.of(12050, "EUR"))
    assert request.customer.email == "ada@example.com"
    assert request.approved_by is not None
    assert (request.approved_by.id, request.approved_by.role) == ("380001", "team_lead")


def test_the_write_back_sample_is_a_zendesk_tickets_event_in_its_fifo_group() -> None:
    (record,) = sample("write_back_refund_issued_sqs.json")["Records"]
    envelope = json.loads(record["body"])
    # parsed as the help desk's function parses it (functions/ticket_platform/app.py write_back_record)
    event = RefundEvent.model_validate({**envelope["detail"], "detail_type": envelope["detail-type"]})
    assert (event.source.platform, event.source.ticket_id) == ("zendesk", "4711")
    assert record["attributes"]["MessageGroupId"] == "zendesk"
    assert record["eventSourceARN"].endswith("-ticket-zendesk.fifo")
