"""The sample events (``events/dynamics_cs/``): each flow body, with the flow's secret header, verifies and names the
sample case, and the sample case (as the Web API answers it) reads, under the default mapping, as the body says."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.platforms.dynamics_cs.inbound import DynamicsCaseInbound

EVENTS = Path(__file__).resolve().parents[3] / "events" / "dynamics_cs"
SECRET = "dynamics-cs-flow-secret-0123456789abcdef"
MAPPING = load_mapping(
    yaml.safe_load(resources.files("refundflow.platforms.dynamics_cs").joinpath("mapping.yaml").read_text()),
    source="dynamics_cs default",
)
FLOW_INTENTS = {
    "flow_case_resolved_refund_approved.json": Intent.APPROVED,
    "flow_refund_requested.json": Intent.REQUESTED,
    "flow_refund_cancelled.json": Intent.CANCELLED,
}


@pytest.mark.parametrize(("name", "intent"), sorted(FLOW_INTENTS.items()))
def test_each_sample_flow_body_verifies_and_reads_as_its_case_says(name: str, intent: Intent) -> None:
    raw = (EVENTS / name).read_bytes()
    verified = DynamicsCaseInbound().verify({"X-Refundflow-Secret": SECRET}, raw, {"shared_secrets": [SECRET]})
    [news] = verified.tickets
    case = json.loads((EVENTS / "case_refund_approved.json").read_text())
    assert news.ticket_id == case["incidentid"]
    body = json.loads(raw)
    case.update(statecode=body["statecode"], new_refundaction=body["new_refundaction"])  # the case at that moment
    found, _ = ticket_request(news, case, MAPPING)
    assert found is intent
