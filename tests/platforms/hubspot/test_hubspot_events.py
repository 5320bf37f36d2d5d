"""The sample events (``events/hubspot/``): each workflow body, signed as HubSpot signs it, verifies and names its
ticket, and the sample ticket (as the connector returns it) reads, under the default mapping, as the stage says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
import yaml

from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.platforms.hubspot.inbound import HubSpotInbound, sign

EVENTS = Path(__file__).resolve().parents[3] / "events" / "hubspot"
SECRET = "hubspot-client-secret-0123456789abcdef"
URL = "https://refunds.example.com/webhooks/hubspot"
MAPPING = load_mapping(
    yaml.safe_load(resources.files("refundflow.platforms.hubspot").joinpath("mapping.yaml").read_text()),
    source="hubspot default",
)
STAGE_INTENTS = {
    "workflow_refund_approved.json": Intent.APPROVED,
    "workflow_refund_requested.json": Intent.REQUESTED,
    "workflow_refund_cancelled.json": Intent.CANCELLED,
}


@pytest.mark.parametrize(("name", "intent"), sorted(STAGE_INTENTS.items()))
def test_each_sample_workflow_body_verifies_and_reads_as_its_stage(name: str, intent: Intent) -> None:
    # GIVEN a sample body, signed now for our webhook URL
    raw = (EVENTS / name).read_bytes()
    now = datetime.now(UTC)
    stamp = str(int(now.timestamp() * 1000))
    headers = {"X-HubSpot-Signature-v3": sign(SECRET, "POST", URL, raw, stamp), "X-HubSpot-Request-Timestamp": stamp}
    # WHEN intake verifies it
    news = HubSpotInbound(now=lambda: now).verify(headers, raw, {"client_secrets": [SECRET], "webhook_urls": [URL]})
    # THEN it is news about the sample ticket, which in that stage asks what the stage says
    [item] = news.tickets
    ticket = json.loads((EVENTS / "ticket_refund_approved.json").read_text())
    assert item.ticket_id == ticket["id"]
    ticket["properties"]["hs_pipeline_stage"] = json.loads(raw)["hs_pipeline_stage"]
    found, _ = ticket_request(item, ticket, MAPPING)
    assert found is intent
