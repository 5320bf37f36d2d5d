"""POST /webhooks/{platform}: one route for every platform of the catalog that sends webhooks; anything else is a
404 before a secret is read, and a delivery is verified with the named platform's scheme only."""

from __future__ import annotations

import json

import pytest

from refundflow import catalog
from tests.e2e.harness import E2EClient, stripe_refund_event, stripe_signature

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "platform",
    ["nope", "STRIPE", *(entry.name for entry in catalog.platforms() if entry.inbound is None)],
)
def test_a_platform_that_sends_no_webhooks_here_is_a_404_problem(client: E2EClient, platform: str) -> None:
    answer = client.post_raw(f"/webhooks/{platform}", b"{}", JSON)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "platform_not_found"


def test_a_delivery_signed_for_one_platform_is_refused_at_another_s_endpoint(client: E2EClient) -> None:
    # GIVEN a correctly signed Stripe event
    body = json.dumps(stripe_refund_event(refund_id=None, payment_id="pi_elsewhere")).encode()
    headers = {**JSON, "Stripe-Signature": stripe_signature(body)}
    # WHEN it is posted to every other platform's endpoint THEN each refuses it: by its own scheme, or before that by
    # media type where the platform posts no JSON (Braintree's forms)
    for entry in catalog.platforms():
        if entry.inbound is None or entry.name == "stripe":
            continue
        answer = client.post_raw(f"/webhooks/{entry.name}", body, headers)
        refusals = {400, 401} if "application/json" in entry.inbound.content_types else {415}
        assert answer.status_code in refusals, (entry.name, answer.status_code, answer.text)
    # AND at Stripe's it is accepted, with Stripe's answer and our duplicate flag
    accepted = client.post_raw("/webhooks/stripe", body, headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.headers["Refundflow-Duplicate-Delivery"] == "false"
