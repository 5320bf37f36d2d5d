"""Intake's route for Salesforce Outbound Messages, in process (moto, the template's tables): text/xml is taken for
Salesforce only, the token is read from the query string and never echoed, each notification is forwarded to the
help desk's function, the answer is the SOAP Ack, and a case field holding a card number refuses the message."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from moto import mock_aws

from local.cfn import Stack
from local.lambdas import LambdaContext, load_handler_module
from local.stack import forget_process_caches
from refundflow import wiring
from refundflow.ports import ProviderEvent, TicketNews
from tests.platforms.salesforce.test_salesforce_outbound_message import ORG, TOKEN, case_id, message, notification
from tests.support.api_events import http_api_event
from tests.support.fakes import REGION, create_tables

OUTBOUND = "{http://soap.sforce.com/2005/09/outbound}"


@dataclass
class Forwarder:
    """Stands in for the help desk's function: records what intake forwards."""

    forwarded: list[TicketNews] = field(default_factory=list)

    def forward(self, platform: str, event: ProviderEvent | TicketNews) -> dict[str, Any]:
        assert platform == "salesforce"
        assert isinstance(event, TicketNews)
        self.forwarded.append(event)
        return {"applied": True}


@dataclass
class Intake:
    stack: Stack
    receive: ModuleType

    def post(self, platform: str, body: bytes, query: dict[str, str], content_type: str) -> dict[str, Any]:
        event = http_api_event(
            "POST",
            f"/webhooks/{platform}",
            body,
            {"content-type": content_type},
            route="/webhooks/{platform}",
            path_parameters={"platform": platform},
        )
        if query:
            event["rawQueryString"] = "&".join(f"{key}={value}" for key, value in query.items())
            event["queryStringParameters"] = dict(query)
        context = LambdaContext(
            function_name=self.stack.physical_name("ReceiveWebhookFunction"),
            invoked_function_arn=self.stack.arn("ReceiveWebhookFunction"),
        )
        answer: dict[str, Any] = self.receive.lambda_handler(event, context)
        return answer


@pytest.fixture(scope="module")
def intake() -> Iterator[Intake]:
    stack = Stack.from_template("refundflow-sf-outbound")
    before = dict(os.environ)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        create_tables(session.client("dynamodb"), stack)
        environment = stack.function_environment("ReceiveWebhookFunction")
        session.client("secretsmanager").create_secret(
            Name=f"{environment['SECRETS_PREFIX']}webhooks/salesforce",
            SecretString=json.dumps({"shared_secrets": [], "organization_id": ORG, "outbound_message_tokens": [TOKEN]}),
        )
        os.environ.update(environment)
        forget_process_caches()
        try:
            receive = load_handler_module(stack.function_folder("ReceiveWebhookFunction"), "sf_outbound_receive")
            yield Intake(stack=stack, receive=receive)
        finally:
            os.environ.clear()
            os.environ.update(before)
            forget_process_caches()


@pytest.fixture
def forwarder(monkeypatch: pytest.MonkeyPatch) -> Forwarder:
    fake = Forwarder()
    monkeypatch.setattr(wiring, "news_forwarder", lambda: fake)
    return fake


def body_of(answer: dict[str, Any]) -> str:
    body: str = answer["body"]
    return base64.b64decode(body).decode() if answer.get("isBase64Encoded") else body


def test_a_good_message_is_forwarded_per_notification_and_acknowledged(intake: Intake, forwarder: Forwarder) -> None:
    answer = intake.post(
        "salesforce", message(notification(11), notification(12)), {"token": TOKEN}, "text/xml; charset=utf-8"
    )
    assert answer["statusCode"] == 200, answer
    assert answer["headers"]["Content-Type"].startswith("text/xml")
    ack = ElementTree.fromstring(body_of(answer))
    assert ack.findtext(f".//{OUTBOUND}Ack") == "true"
    assert [news.ticket_id for news in forwarder.forwarded] == [case_id(11), case_id(12)]
    # The same message again: acknowledged, nothing forwarded twice (the notification ids were seen)
    again = intake.post(
        "salesforce", message(notification(11), notification(12)), {"token": TOKEN}, "text/xml; charset=utf-8"
    )
    assert again["statusCode"] == 200
    assert len(forwarder.forwarded) == 2


def test_a_wrong_token_is_401_and_never_echoed(intake: Intake, forwarder: Forwarder) -> None:
    wrong = "a-wrong-token-that-must-not-be-echoed-0001"
    answer = intake.post("salesforce", message(notification(21)), {"token": wrong}, "text/xml")
    assert answer["statusCode"] == 401, answer
    assert wrong not in body_of(answer)
    assert forwarder.forwarded == []


def test_text_xml_is_refused_for_a_platform_that_does_not_send_it(intake: Intake, forwarder: Forwarder) -> None:
    answer = intake.post("stripe", message(notification(31)), {"token": TOKEN}, "text/xml")
    assert answer["statusCode"] == 415, answer


def test_a_case_field_holding_a_card_number_refuses_the_message_and_tells_the_case(
    intake: Intake, forwarder: Forwarder
) -> None:
    body = message(notification(41, Description="my card is 4111 1111 1111 1111"))
    answer = intake.post("salesforce", body, {"token": TOKEN}, "text/xml")
    assert 400 <= answer["statusCode"] < 500, answer
    assert "4111" not in body_of(answer)
    # The case is still told why, from news that carries none of the body
    [told] = forwarder.forwarded
    assert told.ticket_id == case_id(41)
    assert told.payload == {}
    assert told.refused is not None
