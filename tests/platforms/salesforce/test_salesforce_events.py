"""The sample events (``events/salesforce/``): each Flow callout body, with the org's secret header, verifies and
names its case, and the sample case (as the connector returns it) reads, under the default mapping, as the action
says."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.platforms.salesforce.inbound import SalesforceInbound

EVENTS = Path(__file__).resolve().parents[3] / "events" / "salesforce"
SECRET = "salesforce-events-secret-0123456789abcdef"
MAPPING = load_mapping(
    yaml.safe_load(resources.files("refundflow.platforms.salesforce").joinpath("mapping.yaml").read_text()),
    source="salesforce default",
)
ACTIONS = {
    "salesforce_callout_refund_approved.json": Intent.APPROVED,
    "salesforce_callout_refund_requested.json": Intent.REQUESTED,
    "salesforce_callout_refund_cancelled.json": Intent.CANCELLED,
}


@pytest.mark.parametrize(("name", "intent"), sorted(ACTIONS.items()))
def test_each_sample_callout_verifies_and_reads_as_its_action(name: str, intent: Intent) -> None:
    raw = (EVENTS / name).read_bytes()
    case = json.loads((EVENTS / "salesforce_case_refund_approved.json").read_text())
    body = json.loads(raw)
    verification = {"shared_secrets": [SECRET], "organization_id": body["organizationId"]}
    [news] = SalesforceInbound().verify({"X-Refundflow-Secret": SECRET}, raw, verification).tickets
    assert news.ticket_id == case["Id"]
    case["Refund_Action__c"] = body["refundAction"]
    found, _ = ticket_request(news, case, MAPPING)
    assert found is intent


def test_the_sample_news_names_the_sample_case() -> None:
    sample = json.loads((EVENTS / "salesforce_apply_ticket_news.json").read_text())
    case = json.loads((EVENTS / "salesforce_case_refund_approved.json").read_text())
    assert sample["event"]["ticket_id"] == case["Id"]
    assert sample["event"]["event_id"] == f"{case['Id']}:{case['LastModifiedDate']}"
