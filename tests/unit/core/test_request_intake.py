"""The request intake (refundflow.request_intake, README, Cost per refund, "Cold import"): a refund request is
verified, checked, stored as its REQUEST item with its delivery's marker, and its workflow started, without a
model; the workflow's first step (ValidateRefund) makes the refund. Driven through the intake handler in-process
(moto, tables from template.yaml, the state machine created on moto), and compared with the path it replaced
(refundflow.domain.intake.accept_refund_request, still the path of a help desk's ticket)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.cfn import Stack
from local.lambdas import LambdaContext, load_handler_module
from local.stack import forget_process_caches
from refundflow import catalog, request_check, request_intake, settings
from refundflow.adapters.aws import client as aws_client
from refundflow.adapters.dynamodb import RefundRepository, _from_item
from refundflow.domain import intake
from refundflow.domain.allocation import AllocationRule
from refundflow.domain.approval import ApproverIdentity, decide_approval
from refundflow.domain.failures import handle_failure
from refundflow.domain.payments import look_up_payment
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.returns import accept_return_update
from refundflow.domain.trace import refund_trace
from refundflow.domain.validation import validate_refund
from refundflow.domain.views import refund_view
from refundflow.errors import ConfigurationError, IllegalTransition, InvalidRequest, NotFound, ReturnStepExists
from refundflow.ids import request_fingerprint
from refundflow.models import (
    BooksSystem,
    PaymentProvider,
    RefundRequestBody,
    ReturnStatus,
    ReturnStep,
    ReturnUpdateBody,
)
from refundflow.money import Money
from refundflow.policy import load_default_policy
from refundflow.sources import VerifiedSource
from refundflow.status import RefundStatus
from tests.support.api_events import http_api_event, standard_webhook_headers
from tests.support.fakes import (
    REGION,
    TEST_AUDIT_KEYS,
    FakeRefundProvider,
    FakeTaskCallbacks,
    RecordingPublisher,
    create_tables,
)

SOURCE = "returns-portal"
SECRET = "whsec_" + base64.b64encode(b"request-intake-test-signing-secret").decode()
OTHER_SOURCE = "helpdesk"
OTHER_SECRET = "whsec_" + base64.b64encode(b"request-intake-test-helpdesk-secret").decode()

ORDINARY: dict[str, Any] = {
    "payment": {"provider": "stripe", "payment_id": "pi_3Intake"},
    "amount": {"minor_units": 2500, "currency": "EUR"},
    "reason": "product_return",
    "customer": {"email": "jane.doe@example.com", "name": "Jane Doe", "locale": "de-DE"},
    "source": {"system": SOURCE, "reference": "RMA-1", "ticket_id": "T-1"},
    "order": {
        "order_id": "ORD-1",
        "placed_at": "2026-11-01T10:00:00Z",
        "delivered_at": "2026-11-03T09:30:00+01:00",
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": {"minor_units": 1250, "currency": "EUR"}}],
    },
    "invoice": {"system": "xero", "invoice_id": "inv-1"},
    "return": {"status": "received", "received_at": "2026-11-10T08:00:00Z", "tracking_reference": "3S1"},
    "lines": [
        {"description": "Mug", "sku": "SKU-1", "quantity": 2, "amount": {"minor_units": 2500, "currency": "EUR"}}
    ],
    "note": "dented",
    "approved_by": {"id": "tl-1", "role": "team_lead"},
}
LINES_ONLY: dict[str, Any] = {
    "payment": {"provider": "paypal", "payment_id": "CAP-1", "locator": {"kind": "capture"}},
    "reason": "damaged",
    "customer": {"email": "sam@example.org"},
    "source": {"system": SOURCE, "reference": "RMA-2"},
    "lines": [
        {"description": "Plate", "amount": {"minor_units": 700, "currency": "USD"}},
        {"description": "Bowl", "amount": {"minor_units": 300, "currency": "USD"}},
    ],
}
SPLIT: dict[str, Any] = {
    "tenders": [
        {"payment": {"provider": "stripe", "payment_id": "pi_3Split"}},
        {"kind": "store_credit", "paid": {"minor_units": 500, "currency": "EUR"}},
    ],
    "allocation": "store_credit_last",
    "amount": {"minor_units": 1500, "currency": "EUR"},
    "reason": "changed_mind",
    "customer": {"email": "kim@example.com"},
    "source": {"system": SOURCE, "reference": "RMA-3"},
}
REQUESTS = {"ordinary": ORDINARY, "lines_only": LINES_ONLY, "split": SPLIT}


# ---------------------------------------------------------------- what intake writes is what the store wrote


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_the_request_item_is_the_one_the_store_writes_for_the_refund_the_full_path_made(name: str) -> None:
    document = REQUESTS[name]
    # GIVEN a request the checker vouches for (what the model would have read)
    asked = request_check.vouch(document)
    assert asked is not None
    body = RefundRequestBody.model_validate(document)
    moment = datetime(2026, 12, 7, 13, 0, 0, 123456, tzinfo=UTC)
    # WHEN intake builds its REQUEST item, and the full path builds the refund it stored
    item = request_intake.request_item(
        asked,
        refund_id="rf_" + "a" * 32,
        created_at=moment,
        correlation_id="corr-1",
        delivery_id="msg_1",
        verified_source=SOURCE,
    )
    refund = intake.requested_refund(
        body,
        refund_id="rf_" + "a" * 32,
        tenders=intake.split_tenders(body),
        channel=intake.GENERIC_SOURCE,
        at=moment,
        correlation_id="corr-1",
    )
    stored = _from_item(RefundRepository._request_item(refund))
    written = _from_item(request_intake_item(item))
    # THEN the two items hold the same attributes, plus what intake verified and the allocation rule
    extra = {"delivery_id": "msg_1", "verified_source": SOURCE, "allocation_rule": body.allocation}
    assert written == {**stored, **{key: value for key, value in extra.items() if value is not None}}
    # AND the fingerprint is the full path's
    assert request_fingerprint(asked) == intake.request_fingerprint(body)


def request_intake_item(plain: dict[str, Any]) -> dict[str, Any]:
    from refundflow.adapters.table_calls import to_item

    return to_item({**plain, "pk": f"REFUND#{plain['refund_id']}", "sk": "REQUEST", "entity": "refund_request"})


def test_every_provider_and_books_system_the_models_name_is_in_the_catalog() -> None:
    # Intake checks a request's platforms against the catalog only when it names a locator (the catalog's loader is
    # not imported otherwise): every payment provider and books system the models accept must be deployable.
    assert {provider.value for provider in PaymentProvider} <= {entry.name for entry in catalog.payment_platforms()}
    assert {system.value for system in BooksSystem} <= {entry.name for entry in catalog.books_platforms()}
    assert {rule.value for rule in AllocationRule} == request_check.ALLOCATION_RULE_NAMES
    assert request_intake.CHANNEL == intake.GENERIC_SOURCE


def test_the_workflow_timing_is_read_as_the_settings_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    settings.load.cache_clear()
    for name in ("REFUND_OUTCOME_WAIT_SECONDS", "BOOKS_RETRY_WAIT_SECONDS", "APPROVAL_ESCALATION_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RETURN_WAIT_SECONDS", "86400")
    try:
        assert (
            request_intake.workflow_timing()
            == intake.timing_from(settings.load(settings.WorkflowTimingSettings)).as_input()
        )
        settings.load.cache_clear()
        monkeypatch.setenv("RETURN_WAIT_SECONDS", str(31_536_001))
        with pytest.raises(ConfigurationError):
            request_intake.workflow_timing()
        with pytest.raises(ConfigurationError):
            settings.load(settings.WorkflowTimingSettings)
    finally:
        settings.load.cache_clear()


# ---------------------------------------------------------------- through the handler, on moto


@dataclass
class Intake:
    stack: Stack
    dynamodb: Any
    sfn: Any
    table: str
    state_machine_arn: str
    receive: ModuleType

    def post(self, document: dict[str, Any], *, delivery_id: str, secret: str = SECRET) -> dict[str, Any]:
        body = json.dumps(document).encode()
        headers = {
            "content-type": "application/json",
            **standard_webhook_headers(body, secret, delivery_id=delivery_id),
        }
        context = LambdaContext(
            function_name=self.stack.physical_name("ReceiveWebhookFunction"),
            invoked_function_arn=self.stack.arn("ReceiveWebhookFunction"),
        )
        answer: dict[str, Any] = self.receive.lambda_handler(
            http_api_event("POST", "/refund-requests", body, headers), context
        )
        return answer

    def items(self) -> list[dict[str, Any]]:
        return [_from_item(item) for item in self.dynamodb.scan(TableName=self.table)["Items"]]

    def executions(self) -> list[str]:
        listed = self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
        return sorted(execution["name"] for execution in listed)

    def repository(self) -> RefundRepository:
        return RefundRepository(self.table, self.dynamodb, audit_keys=lambda: TEST_AUDIT_KEYS)


@pytest.fixture
def api() -> Iterator[Intake]:
    stack = Stack.from_template("refundflow-request-intake")
    before = dict(os.environ)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        tables = create_tables(session.client("dynamodb"), stack)
        environment = stack.function_environment("ReceiveWebhookFunction")
        session.client("secretsmanager").create_secret(
            Name=environment["REFUND_REQUESTS_SECRET_NAME"],
            SecretString=json.dumps(
                {
                    "sources": {
                        SOURCE: {"signing_secrets": [SECRET]},
                        OTHER_SOURCE: {"signing_secrets": [OTHER_SECRET]},
                    }
                }
            ),
        )
        sfn = session.client("stepfunctions")
        name = environment["REFUND_WORKFLOW_ARN"].rsplit(":", 1)[1]
        arn = sfn.create_state_machine(
            name=name,
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/refund-workflow",
        )["stateMachineArn"]
        environment["REFUND_WORKFLOW_ARN"] = arn
        os.environ.update(environment)
        forget_process_caches()
        try:
            yield Intake(
                stack=stack,
                dynamodb=session.client("dynamodb"),
                sfn=sfn,
                table=tables.refunds_table,
                state_machine_arn=arn,
                receive=load_handler_module(stack.function_folder("ReceiveWebhookFunction"), "request_intake_receive"),
            )
        finally:
            os.environ.clear()
            os.environ.update(before)
            forget_process_caches()


def accepted(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["statusCode"] == 202, answer
    document: dict[str, Any] = json.loads(answer["body"])
    return document


def problem(answer: dict[str, Any], status: int) -> dict[str, Any]:
    assert answer["statusCode"] == status, answer
    assert answer["headers"]["Content-Type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(answer["body"])
    return document


def test_a_request_is_stored_and_started_once_and_its_first_step_makes_the_refund(api: Intake) -> None:
    # WHEN a request arrives, then again (a redelivery), then under another delivery id
    first = accepted(api.post(ORDINARY, delivery_id="msg_1"))
    again = accepted(api.post(ORDINARY, delivery_id="msg_1"))
    other_id = accepted(api.post(ORDINARY, delivery_id="msg_2"))
    refund_id = first["refund_id"]
    # THEN one refund id, RECEIVED, the later two duplicates, and one execution named after the refund
    assert first == {
        "refund_id": refund_id,
        "status": "RECEIVED",
        "duplicate": False,
        "links": {"self": {"href": f"/refunds/{refund_id}"}},
    }
    assert (again["refund_id"], again["duplicate"], other_id["refund_id"], other_id["duplicate"]) == (
        refund_id,
        True,
        refund_id,
        True,
    )
    assert api.executions() == [refund_id]
    # AND intake stored the request and both deliveries' markers, and no refund state or audit entry yet
    keys = sorted((item["pk"], item["sk"]) for item in api.items())
    assert keys == [
        (f"REFUND#{refund_id}", "REQUEST"),
        ("SOURCE#refund-requests#msg_1", "SOURCE"),
        ("SOURCE#refund-requests#msg_2", "SOURCE"),
    ]
    repository = api.repository()
    assert repository.find(refund_id) is None
    # AND a reader sees the RECEIVED refund with no timeline yet
    view = refund_view(refund_id, repository=repository)
    assert (view.status, view.timeline) == (RefundStatus.RECEIVED, [])
    assert (view.audit.intact, view.audit.entries) == (True, 0)  # an empty trail, not a broken one
    assert refund_trace(refund_id, repository=repository).status is RefundStatus.RECEIVED
    # WHEN the workflow's first step runs (twice: a retry)
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    validate_refund(refund_id, recorder=recorder)
    validate_refund(refund_id, recorder=recorder)
    # THEN the refund exists, VALIDATED, created when intake stored the request, with one RefundRequested entry
    refund = repository.get(refund_id)
    assert refund.status is RefundStatus.VALIDATED
    request_created = next(item for item in api.items() if item["sk"] == "REQUEST")["created_at"]
    assert refund.created_at == datetime.fromisoformat(str(request_created))
    trail, _ = repository.audit_trail(refund_id)
    assert [entry.type for entry in trail] == ["RefundRequested", "StatusChanged:VALIDATED"]
    details = trail[0].details
    assert (details["delivery_id"], details["verified_source"], details["lines"]) == ("msg_1", SOURCE, 1)
    assert trail[0].actor == f"refund-requests:{SOURCE}"
    # AND a request delivered after the refund moved answers its status and starts nothing new
    later = accepted(api.post(ORDINARY, delivery_id="msg_3"))
    assert (later["status"], later["duplicate"]) == ("VALIDATED", True)
    assert api.executions() == [refund_id]


class CountedWrites:
    """A DynamoDB client that records the item keys of every write it passes on (README, Cost per refund)."""

    WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")

    def __init__(self, client: Any) -> None:
        self._client = client
        self.writes: list[tuple[str, list[str]]] = []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)
        if name not in self.WRITES:
            return call

        def counted(**kwargs: Any) -> Any:
            if name == "transact_write_items":
                ops = [next(iter(item.values())) for item in kwargs["TransactItems"]]
                keys = [_key_shape(op.get("Item") or op["Key"]) for op in ops]
            else:
                keys = [_key_shape(kwargs.get("Item") or kwargs.get("Key") or {})]
            self.writes.append((name, keys))
            return call(**kwargs)

        return counted


def _key_shape(item: dict[str, Any]) -> str:
    values = _from_item({key: item[key] for key in ("pk", "sk") if key in item})
    return f"{str(values.get('pk', '')).split('#', 1)[0]}/{str(values.get('sk', '')).split('#', 1)[0]}"


def counted_recorder(api: Intake) -> tuple[CountedWrites, Any]:
    """A recorder on intake's table whose writes are counted, publishing to a recording publisher."""
    counted = CountedWrites(api.dynamodb)
    repository = RefundRepository(api.table, counted, audit_keys=lambda: TEST_AUDIT_KEYS)
    return counted, RefundRecorder(repository, RecordingPublisher(), publish_all=True)


def books_gone(payment: Any, invoice: Any) -> None:
    """``ensure_deployed`` of a deployment that no longer has the request's books system."""
    raise InvalidRequest("books system xero is not deployed", code="unsupported_books")


def test_a_valid_request_becomes_its_validated_refund_in_one_write(api: Intake) -> None:
    # GIVEN a request stored by intake, and the workflow's first step writing through a counted client
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    counted, recorder = counted_recorder(api)
    repository, publisher = recorder.repository, recorder.publisher
    # WHEN the step runs
    result = validate_refund(refund_id, recorder=recorder)
    # THEN one transaction made the refund VALIDATED: its state, both entries and the customer's velocity counter
    # (not a creation, then a move)
    assert result.status is RefundStatus.VALIDATED
    assert counted.writes == [("transact_write_items", ["REFUND/STATE", "AUDIT/EVENT", "AUDIT/EVENT", "CUSTOMER/DAY"])]
    refund = repository.get(refund_id)
    trail, _ = repository.audit_trail(refund_id)
    assert [(entry.type, entry.from_status, entry.to_status) for entry in trail] == [
        ("RefundRequested", None, RefundStatus.RECEIVED),
        ("StatusChanged:VALIDATED", RefundStatus.RECEIVED, RefundStatus.VALIDATED),
    ]
    assert trail[1].actor == "step:ValidateRefund"
    assert trail[1].details == {"provider": "stripe", "books": "xero"}
    assert (refund.audit_seq, refund.status_seq, refund.audit_head) == (2, 2, trail[1].hash)
    assert trail[0].at < trail[1].at == refund.updated_at
    assert refund_view(refund_id, repository=repository).audit.intact is True
    # AND both statuses' events went out, in order, each as of its own entry
    assert [(event.detail_type, event.status, event.event_id) for event in publisher.events] == [
        ("RefundRequested", RefundStatus.RECEIVED, f"{refund_id}#1"),
        ("RefundValidated", RefundStatus.VALIDATED, f"{refund_id}#2"),
    ]
    # WHEN the step is retried THEN nothing is written again; the latest status's event goes out again
    counted.writes.clear()
    assert validate_refund(refund_id, recorder=recorder).status is RefundStatus.VALIDATED
    assert counted.writes == []
    assert [event.event_id for event in publisher.events[2:]] == [f"{refund_id}#2"]


def test_a_request_this_deployment_cannot_carry_out_is_made_received_for_the_catch_path_to_reject(
    api: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a request stored by intake, then a deployment that no longer has its books system
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    publisher = RecordingPublisher()
    recorder = RefundRecorder(repository, publisher, publish_all=True)
    monkeypatch.setattr("refundflow.domain.validation.ensure_deployed", books_gone)
    # WHEN the step runs THEN it refuses the refund, which exists, RECEIVED, with only its request's entry
    with pytest.raises(InvalidRequest) as refused:
        validate_refund(refund_id, recorder=recorder)
    assert refused.value.code == "unsupported_books"
    assert repository.get(refund_id).status is RefundStatus.RECEIVED
    trail, _ = repository.audit_trail(refund_id)
    assert [entry.type for entry in trail] == ["RefundRequested"]
    assert [event.detail_type for event in publisher.events] == ["RefundRequested"]


def execution_input(api: Intake, refund_id: str) -> dict[str, Any]:
    arn = f"{api.state_machine_arn.replace(':stateMachine:', ':execution:')}:{refund_id}"
    document: dict[str, Any] = json.loads(api.sfn.describe_execution(executionArn=arn)["input"])
    return document


def test_a_request_with_one_payment_names_its_provider_in_the_executions_input(api: Intake) -> None:
    # WHEN a request with one payment and a split-tender request are accepted
    one = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    split = accepted(api.post(SPLIT, delivery_id="msg_2"))["refund_id"]
    # THEN the first execution's input names the provider (its first step is the look-up), the second's does not
    # (ValidateRefund names the split function)
    assert execution_input(api, one)["provider"] == "stripe"
    assert "provider" not in execution_input(api, split)
    assert execution_input(api, one)["timing"] == execution_input(api, split)["timing"]
    # AND a redelivery starts the same execution with the same input
    assert accepted(api.post(ORDINARY, delivery_id="msg_3"))["duplicate"] is True
    assert api.executions() == sorted([one, split])


def stripe_with(payment_id: str, captured: int, currency: str = "EUR") -> FakeRefundProvider:
    provider = FakeRefundProvider()
    provider.add_payment(payment_id, Money.of(captured, currency))
    return provider


def test_the_look_up_of_a_stored_request_makes_validates_and_looks_it_up_in_one_write(api: Intake) -> None:
    # GIVEN a request stored by intake (2,500 EUR cents of a 4,000 payment), and its look-up writing through a
    # counted client
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    counted, recorder = counted_recorder(api)
    repository, publisher = recorder.repository, recorder.publisher
    provider = stripe_with("pi_3Intake", 4_000)
    # WHEN the workflow's first step is the look-up
    result = look_up_payment(refund_id, recorder=recorder, provider=provider)
    # THEN the payment was read once, its balance opened, and one transaction made the refund VALIDATED with its
    # amount: its state, the three entries and the customer's velocity counter
    assert (result.status, result.outcome, result.provider, result.books) == (
        RefundStatus.VALIDATED,
        "PAYMENT_FOUND",
        PaymentProvider.STRIPE,
        BooksSystem.XERO,
    )
    assert provider.method_sequence == ["get_payment"]
    assert counted.writes == [
        ("put_item", ["PAYMENT/REFUNDABLE"]),
        ("transact_write_items", ["REFUND/STATE", "AUDIT/EVENT", "AUDIT/EVENT", "AUDIT/EVENT", "CUSTOMER/DAY"]),
    ]
    refund = repository.get(refund_id)
    assert (refund.status, refund.amount) == (RefundStatus.VALIDATED, Money.of(2_500, "EUR"))
    trail, _ = repository.audit_trail(refund_id)
    assert [(entry.type, entry.actor) for entry in trail] == [
        ("RefundRequested", f"refund-requests:{SOURCE}"),
        ("StatusChanged:VALIDATED", "step:ValidateRefund"),
        ("PaymentLookedUp", "provider:stripe"),
    ]
    assert trail[2].details["remaining"] == {"minor_units": 4_000, "currency": "EUR"}
    assert trail[2].details["amount"] == {"minor_units": 2_500, "currency": "EUR"}
    assert refund_view(refund_id, repository=repository).audit.intact is True
    assert [event.detail_type for event in publisher.events] == ["RefundRequested", "RefundValidated"]
    # WHEN the step is retried THEN the provider is not asked again and nothing is written
    counted.writes.clear()
    assert look_up_payment(refund_id, recorder=recorder, provider=provider).status is RefundStatus.VALIDATED
    assert (provider.method_sequence, counted.writes) == (["get_payment"], [])


def test_a_look_up_that_fails_leaves_the_refund_made_for_the_retry_or_the_catch_path(api: Intake) -> None:
    # GIVEN a request stored by intake whose payment the provider does not know
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    # WHEN the look-up runs first THEN it fails as any look-up does, and the refund is made VALIDATED, no amount
    with pytest.raises(NotFound):
        look_up_payment(refund_id, recorder=recorder, provider=FakeRefundProvider())
    refund = repository.get(refund_id)
    assert (refund.status, refund.amount) == (RefundStatus.VALIDATED, None)
    trail, _ = repository.audit_trail(refund_id)
    assert [entry.type for entry in trail] == ["RefundRequested", "StatusChanged:VALIDATED"]
    # AND the retry, once the provider knows the payment, looks it up as a VALIDATED refund
    result = look_up_payment(refund_id, recorder=recorder, provider=stripe_with("pi_3Intake", 2_500))
    assert (result.status, result.outcome) == (RefundStatus.VALIDATED, "PAYMENT_FOUND")
    assert [entry.type for entry in repository.audit_trail(refund_id)[0]][-1] == "PaymentLookedUp"


def test_a_look_up_first_of_a_request_this_deployment_cannot_carry_out_makes_it_received(
    api: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a request stored by intake, then a deployment that no longer has its books system
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    monkeypatch.setattr("refundflow.domain.validation.ensure_deployed", books_gone)
    provider = stripe_with("pi_3Intake", 4_000)
    # WHEN the look-up runs first THEN it refuses as ValidateRefund would, before asking the provider
    with pytest.raises(InvalidRequest) as refused:
        look_up_payment(refund_id, recorder=recorder, provider=provider)
    assert refused.value.code == "unsupported_books"
    assert provider.calls == []
    # AND the refund is made RECEIVED, for the catch path, which rejects it with that reason
    assert repository.get(refund_id).status is RefundStatus.RECEIVED
    handled = handle_failure(
        refund_id,
        "InvalidRequest",
        json.dumps({"errorMessage": "unsupported_books: books system xero is not deployed"}),
        recorder=recorder,
        max_books_attempts=3,
    )
    assert handled.status is RefundStatus.REJECTED
    assert repository.get(refund_id).failure.code == "unsupported_books"  # type: ignore[union-attr]


@pytest.mark.parametrize("request_body", [LINES_ONLY, SPLIT], ids=["another_provider", "split_tender"])
def test_a_look_up_first_in_another_platforms_function_is_refused_before_any_platform_is_asked(
    api: Intake, request_body: dict[str, Any]
) -> None:
    # GIVEN a request stored by intake for a PayPal payment, or split across tenders (no provider in its start)
    refund_id = accepted(api.post(request_body, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    provider = stripe_with("pi_3Split", 1_500)
    # WHEN Stripe's function is asked to make it by a start that named Stripe
    with pytest.raises(InvalidRequest) as refused:
        look_up_payment(refund_id, recorder=recorder, provider=provider)
    # THEN it refuses as a misrouted call, asks no platform, and leaves the refund RECEIVED for the catch path
    assert refused.value.code == "wrong_platform"
    assert provider.calls == []
    assert repository.get(refund_id).status is RefundStatus.RECEIVED


def test_the_catch_path_makes_and_fails_a_refund_whose_first_step_never_ran(api: Intake) -> None:
    # GIVEN a request stored by intake whose first step's function could not be invoked
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    # WHEN the catch path handles the error
    cause = json.dumps({"errorMessage": "Function not found"})
    result = handle_failure(
        refund_id, "Lambda.ResourceNotFoundException", cause, recorder=recorder, max_books_attempts=3
    )
    # THEN the refund is made from the request and failed, its trail intact
    assert result.status is RefundStatus.FAILED
    trail, _ = repository.audit_trail(refund_id)
    assert [entry.type for entry in trail] == ["RefundRequested", "StatusChanged:FAILED"]
    assert refund_view(refund_id, repository=repository).audit.intact is True


def test_other_content_under_the_same_reference_or_a_reused_delivery_id_is_a_conflict(api: Intake) -> None:
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    stored = api.items()
    # WHEN the same source reference comes with another amount
    changed = {**ORDINARY, "amount": {"minor_units": 2400, "currency": "EUR"}, "lines": []}
    conflict = problem(api.post(changed, delivery_id="msg_9"), 409)
    # AND the first delivery id is used for another request
    reused = problem(api.post(LINES_ONLY, delivery_id="msg_1"), 409)
    # THEN both are conflicts: only the second delivery id's marker was spent (its request was the first one's)
    assert (conflict["code"], reused["code"]) == ("idempotency_conflict", "idempotency_conflict")
    assert "already received with other content" in conflict["detail"]
    assert "already used for another refund request" in reused["detail"]
    added = [item for item in api.items() if item not in stored]
    assert [(item["pk"], item["refund_id"]) for item in added] == [("SOURCE#refund-requests#msg_9", refund_id)]
    assert api.executions() == [refund_id]


def test_a_source_naming_another_source_is_refused_with_nothing_stored(api: Intake) -> None:
    # The helpdesk's secret signs a request that says it comes from the returns portal
    answer = problem(api.post(ORDINARY, delivery_id="msg_1", secret=OTHER_SECRET), 403)
    assert answer["code"] == "source_mismatch"
    assert api.items() == []
    assert api.executions() == []


def test_what_the_checker_cannot_vouch_for_is_answered_by_the_model(api: Intake) -> None:
    # GIVEN a body the checker leaves to the model (a quantity as a numeric string, which the model reads as a
    # number), and one the model refuses
    line = {"description": "Mug", "quantity": "2", "amount": {"minor_units": 2500, "currency": "EUR"}}
    lax = {**ORDINARY, "lines": [line]}
    assert request_check.vouch(lax) is None
    invalid = {**ORDINARY, "lines": [], "amount": {"minor_units": 2500, "currency": "EUR"}, "reason": "whim"}
    # THEN the model's verdict is the answer: the first is read as the model reads it, the second is its 400
    assert accepted(api.post(lax, delivery_id="msg_1"))["status"] == "RECEIVED"
    refused = problem(api.post(invalid, delivery_id="msg_2"), 400)
    assert refused["code"] == "validation_failed"
    assert [error["field"] for error in refused["errors"]] == ["reason"]
    # AND a locator its platform does not own is refused (the catalog consulted), an unknown allocation rule too
    wrong_locator = {**LINES_ONLY, "payment": {"provider": "paypal", "payment_id": "CAP-9", "locator": {"no": "x"}}}
    assert problem(api.post(wrong_locator, delivery_id="msg_3"), 400)["code"] == "invalid_locator"
    unknown_rule = {**SPLIT, "allocation": "largest_first"}
    assert problem(api.post(unknown_rule, delivery_id="msg_4"), 400)["code"] == "unknown_allocation_rule"
    assert len(api.executions()) == 1


def test_a_return_step_between_the_request_and_its_refund_is_recorded_once(api: Intake) -> None:
    # GIVEN a request stored by intake, and a step of its return reported before the workflow made the refund
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    step = ReturnStep(
        status=ReturnStatus.IN_TRANSIT,
        occurred_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        recorded_at=datetime.now(UTC),
        source=SOURCE,
    )
    assert repository.put_return_step(refund_id, step) is True
    # WHEN the workflow's first step makes the refund (recording the step), and the step's own delivery, racing,
    # tries to record it too
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    validate_refund(refund_id, recorder=recorder)
    refund = repository.get(refund_id)
    with pytest.raises(ReturnStepExists):
        recorder.note(
            refund,
            "ReturnUpdated",
            actor=f"returns:{SOURCE}",
            details={"status": "in_transit"},
            extra=[repository.return_step_noted(refund_id, step)],
        )
    # THEN the trail holds one entry for it, reported after the request (not before it)
    trail, _ = repository.audit_trail(refund_id)
    updates = [entry.details for entry in trail if entry.type == "ReturnUpdated"]
    assert [(entry["status"], entry.get("before_request", False)) for entry in updates] == [("in_transit", False)]


def test_a_step_delivered_while_the_refund_is_being_made_is_recorded_once(api: Intake) -> None:
    # GIVEN a request stored by intake
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    listed = repository.return_steps
    delivered: list[Any] = []

    def steps_after_a_delivery(refund_id: str) -> list[ReturnStep]:
        # WHEN a step's delivery is recorded the moment after the refund was made (it sees the refund and writes its
        # own entry), before the creation lists the steps to record
        if not delivered:
            delivered.append(None)
            update = ReturnUpdateBody.model_validate(
                {
                    "source": {"system": SOURCE, "reference": ORDINARY["source"]["reference"]},
                    "status": "in_transit",
                    "occurred_at": "2026-12-01T09:00:00Z",
                }
            )
            delivered[0] = accept_return_update(
                update, source=VerifiedSource(SOURCE), delivery_id="ret-1", recorder=recorder, callbacks=None
            )
        return listed(refund_id)

    repository.return_steps = steps_after_a_delivery  # type: ignore[method-assign]
    validate_refund(refund_id, recorder=recorder)
    # THEN the step has one entry, its delivery's, not reported before the request
    trail, _ = repository.audit_trail(refund_id)
    updates = [entry.details for entry in trail if entry.type == "ReturnUpdated"]
    assert [(entry["status"], entry.get("before_request", False)) for entry in updates] == [("in_transit", False)]
    assert delivered[0].duplicate is False


def test_an_approval_before_the_refund_is_made_is_answered_as_for_a_received_refund(api: Intake) -> None:
    # GIVEN a request stored by intake, its refund not made yet
    refund_id = accepted(api.post(ORDINARY, delivery_id="msg_1"))["refund_id"]
    repository = api.repository()
    recorder = RefundRecorder(repository, RecordingPublisher(), publish_all=True)
    # WHEN an approver decides on it THEN it is not waiting for a decision (409, as for a RECEIVED refund), not 404
    with pytest.raises(IllegalTransition) as refused:
        decide_approval(
            refund_id,
            "approve",
            None,
            ApproverIdentity(subject="lee", role="finance", token_id="jti-early"),
            recorder=recorder,
            policy=load_default_policy(),
            callbacks=FakeTaskCallbacks(),
        )
    assert refused.value.code == "not_pending_approval"


def test_a_request_whose_transaction_another_cancelled_is_a_503_to_retry_not_a_conflict(
    api: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB cancels intake's transaction because another one was writing the same items (the same request
    # delivered twice at once)
    def cancelled(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(aws_client("dynamodb"), "transact_write_items", cancelled)
    # WHEN it is delivered THEN the sender is told to retry (503 store_busy), as the refund store tells its callers
    busy = problem(api.post(ORDINARY, delivery_id="msg_1"), 503)
    assert busy["code"] == "store_busy"
    assert api.executions() == []
