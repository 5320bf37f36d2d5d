"""Intake's webhook route with Mollie's classic calls, in process (moto, the real handler): a platform that
declares form bodies (Mollie, catalog ``content_types``) gets its ``id=tr_...`` call to its verifier and forwarded
as news; every other platform still answers 415 to a form; anything else unsigned at Mollie's endpoint is a 401."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cfn import Stack
from local.lambdas import LambdaContext, load_handler_module
from local.stack import forget_process_caches
from refundflow import catalog, wiring
from refundflow.platforms.mollie import inbound as mollie_inbound
from refundflow.ports import NewsForwarder, ProviderEvent
from tests.support.api_events import http_api_event
from tests.support.fakes import REGION, create_tables

FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Recorded(NewsForwarder):
    events: list[tuple[str, ProviderEvent]] = field(default_factory=list)

    def forward(self, platform: str, event: ProviderEvent) -> None:
        self.events.append((platform, event))


@dataclass
class Intake:
    stack: Stack
    module: ModuleType
    forwarded: Recorded

    def post(self, platform: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        event = http_api_event(
            "POST",
            f"/webhooks/{platform}",
            body,
            headers,
            route="/webhooks/{platform}",
            path_parameters={"platform": platform},
        )
        context = LambdaContext(
            function_name=self.stack.physical_name("ReceiveWebhookFunction"),
            invoked_function_arn=self.stack.arn("ReceiveWebhookFunction"),
        )
        answer: dict[str, Any] = self.module.lambda_handler(event, context)
        return answer


@pytest.fixture(scope="module")
def intake() -> Iterator[Intake]:
    stack = Stack.from_template("refundflow-mollie-intake")
    before = dict(os.environ)
    forwarded = Recorded()
    patch = pytest.MonkeyPatch()
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        create_tables(session.client("dynamodb"), stack)
        environment = stack.function_environment("ReceiveWebhookFunction")
        for name, secret in (("mollie", {"signing_secrets": ["s"]}), ("stripe", {"webhook_secrets": ["whsec_x"]})):
            session.client("secretsmanager").create_secret(
                Name=f"{environment['SECRETS_PREFIX']}webhooks/{name}", SecretString=json.dumps(secret)
            )
        os.environ.update(environment)
        forget_process_caches()
        patch.setattr(wiring, "news_forwarder", lambda: forwarded)
        # A fixed clock: two calls about one payment fall in one coalescing window, whatever the machine's pace.
        patch.setattr(mollie_inbound, "inbound", lambda: mollie_inbound.MollieInbound(now=lambda: 1_000.0))
        try:
            module = load_handler_module(stack.function_folder("ReceiveWebhookFunction"), "mollie_intake_receive")
            yield Intake(stack=stack, module=module, forwarded=forwarded)
        finally:
            patch.undo()
            os.environ.clear()
            os.environ.update(before)
            forget_process_caches()


def test_a_classic_call_reaches_mollies_verifier_and_is_forwarded_as_news(intake: Intake) -> None:
    answer = intake.post("mollie", b"id=tr_WDqYK6vllg", {**FORM, "user-agent": "Mollie HTTP client/1.0"})
    assert answer["statusCode"] == 200, answer
    ((platform, event),) = intake.forwarded.events
    assert platform == "mollie"
    assert event.payment is not None
    assert (event.payment.payment_id, event.refunds) == ("tr_WDqYK6vllg", [])
    assert answer["headers"]["Refundflow-Duplicate-Delivery"] == "false"
    # AND the same call again in the same window is one piece of news: acknowledged, not forwarded twice
    again = intake.post("mollie", b"id=tr_WDqYK6vllg", FORM)
    assert again["statusCode"] == 200
    assert again["headers"]["Refundflow-Duplicate-Delivery"] == "true"
    assert len(intake.forwarded.events) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"id": "tr_WDqYK6vllg"}', {"content-type": "application/json"}, 401),
        (b"id=tr_WDqYK6vllg&status=refunded", FORM, 401),
        (b"id=tr_WDqYK6vllg", {"content-type": "text/plain"}, 415),
    ],
    ids=["unsigned-json", "form-with-more", "text"],
)
def test_anything_else_unsigned_at_mollies_endpoint_is_refused(
    intake: Intake, body: bytes, headers: dict[str, str], status: int
) -> None:
    before = len(intake.forwarded.events)
    assert intake.post("mollie", body, headers)["statusCode"] == status
    assert len(intake.forwarded.events) == before


def test_platforms_that_post_json_still_refuse_forms(intake: Intake) -> None:
    # a platform whose catalog entry does not declare form bodies (Stripe posts JSON only) refuses Mollie's form
    stripe = catalog.platform("stripe").inbound
    assert stripe is not None
    assert FORM not in stripe.content_types
    assert intake.post("stripe", b"id=tr_WDqYK6vllg", FORM)["statusCode"] == 415
