"""The sample notifications in events/intercom/ are what Intercom sends: each conversation item has the spec's
Conversation shape (intercom-api-v2.16.yaml), each verifies once signed, and the default mapping reads them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.platforms.intercom.inbound import IntercomInbound
from tests.conftest import CONTRACTS
from tests.contract.conftest import require_contracts

EVENTS = Path(__file__).resolve().parents[3] / "events" / "intercom"
SECRET = "intercom-events-client-secret-000000"
SAMPLES = {
    "intercom_refund_approved.json": Intent.APPROVED,
    "intercom_refund_requested.json": Intent.REQUESTED,
    "intercom_refund_cancelled.json": Intent.CANCELLED,
}


@cache
def _components(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    components: dict[str, Any] = document["components"]
    return components


def verified(name: str) -> Any:
    raw = (EVENTS / name).read_bytes()
    headers = {"X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()}
    created = datetime.fromtimestamp(json.loads(raw)["created_at"], UTC)
    return IntercomInbound(now=lambda: created).verify(headers, raw, {"client_secrets": [SECRET]})


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_samples_conversation_has_the_specs_shape(name: str) -> None:
    spec = require_contracts(CONTRACTS, os.environ, "intercom-api-v2.16.yaml") / "intercom-api-v2.16.yaml"
    components = _components(str(spec))
    schema = {"$ref": "#/components/schemas/conversation", "components": components}
    item = json.loads((EVENTS / name).read_text())["data"]["item"]
    errors = [error.message for error in OAS30Validator(schema).iter_errors(item)]
    assert errors == []


@pytest.mark.parametrize(("name", "intent"), sorted(SAMPLES.items()))
def test_each_sample_verifies_and_the_default_mapping_reads_its_intent(name: str, intent: Intent) -> None:
    [news] = verified(name).tickets
    assert news.ticket_id == "100017"
    mapping_text = resources.files("refundflow.platforms.intercom").joinpath("mapping.yaml").read_text()
    mapping = load_mapping(yaml.safe_load(mapping_text), source="intercom default")
    # the sample's item stands in for the API's answer here (the connector adds the contact as customer)
    conversation = {**news.payload["data"]["item"], "customer": {"email": "ada@example.com", "name": "Ada Lovelace"}}
    found, request = ticket_request(news, conversation, mapping)
    assert found is intent
    if intent is Intent.APPROVED:
        assert request.approved_by.role == "team_lead"
        assert (request.amount.minor_units, request.amount.currency) == (4990, "EUR")


def test_the_ping_sample_is_answered_without_news() -> None:
    delivery = verified("intercom_ping.json")
    assert delivery.tickets == []
