"""The local stack: refundflow on this machine without AWS or Docker.

moto (threaded server) plays DynamoDB, Step Functions, EventBridge, SQS, Secrets Manager and SES;
the resources come from template.yaml; the functions run in-process; the real ASL runs on moto's
interpreter; an HTTP server maps the template's API routes to the handlers (API Gateway v2 events)
and serves the sandbox simulators under /_sandbox/<platform>. Only configuration differs from AWS.

Platforms come from the catalog (refundflow/platforms/catalog.yaml): each entry's simulator is built and
mounted, its secrets seeded from the simulator's ``local_secrets()``, its settings given their ``local``
values and its webhooks pointed at ``/webhooks/<name>``. Nothing here names a platform.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from secrets import token_bytes
from typing import Any

import boto3
import requests
from botocore.config import Config

from local import moto_patches
from local.cfn import Stack
from local.lambdas import AwsCall, LocalFunctions, own_environments
from local.simulators.merchant import MerchantWebhookReceiver
from refundflow import catalog

STACK_NAME = "refundflow-local"
# Operations resources of the template that have no local counterpart (moto runs no alarms or dashboards).
NOT_MADE_LOCALLY = frozenset(
    {"AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"}
)


QUEUE_ATTRIBUTES = frozenset(
    {"VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy", "FifoQueue", "ContentBasedDeduplication"}
)


def _local_signing_secret(label: str) -> str:
    """A Standard Webhooks secret (whsec_ + base64 of 32 bytes) that is the same on every run."""
    return "whsec_" + base64.b64encode(f"refundflow-local-{label}".ljust(32, "!")[:32].encode()).decode()


MERCHANT_SHOP = "merchant-shop"
# The local stack's credentials: sandbox values, documented in the README, never real ones.
# Each source system that posts refund requests locally has its own signing secrets (the help desk two,
# as during a rotation): the demo and the e2e suite use the returns portal and the help desk, the README's
# curl session "curl", the benchmarks "bench".
SOURCE_SIGNING_SECRETS: dict[str, tuple[str, ...]] = {
    "returns-portal": (_local_signing_secret("returns-portal"),),
    "helpdesk": (_local_signing_secret("helpdesk"), _local_signing_secret("helpdesk-previous")),
    "curl": (_local_signing_secret("curl"),),
    "bench": (_local_signing_secret("bench"),),
    # The merchant's web shop: its refunds' customers are told by the merchant's own system (the merchant webhook).
    MERCHANT_SHOP: (_local_signing_secret(MERCHANT_SHOP),),
}
# The carriers that report failed deliveries (POST /triggers/delivery-failures): their own secrets, in their own
# secret (DeliveryFailuresSecretName), so a refund-request source cannot report a delivery failure nor the reverse.
CARRIER_SIGNING_SECRETS: dict[str, tuple[str, ...]] = {"parcel-carrier": (_local_signing_secret("parcel-carrier"),)}
# Which roles each local source may assert in approved_by: the local policy's sources: section (the
# packaged policy trusts no source). The help desk stands for a help desk whose group-to-role mapping is
# trusted up to team lead; the others assert nothing.
# Every help desk of the catalog (its group-to-role mapping decides who is a team lead) is trusted up to team lead
# locally, so the demo's and the e2e suite's approvals in tickets count; a deployment names its own in the policy.
SOURCE_ROLES: dict[str, list[str]] = {
    "returns-portal": [],
    "helpdesk": ["agent", "team_lead"],
    "curl": [],
    "bench": [],
    MERCHANT_SHOP: [],
    **{entry.name: ["agent", "team_lead"] for entry in catalog.ticket_platforms()},
}
LOCAL_POLICY_PARAMETER = "/refundflow/local/policy"


def forget_process_caches() -> None:
    """Clients, settings and secrets the handlers cached point at the previous stack: drop them all."""
    from aws_lambda_powertools.utilities import parameters

    from refundflow import wiring
    from refundflow.adapters import aws, idempotency
    from refundflow.policy import active_policy

    for cached in (aws.client, idempotency._store, idempotency._config, active_policy):
        cached.cache_clear()
    # Each platform package's cached factories (connector(), inbound()), for the packages loaded so far.
    for entry in catalog.platforms():
        for part in ("connector", "inbound"):
            module = sys.modules.get(f"refundflow.platforms.{entry.name}.{part}")
            factory = getattr(module, part, None)
            if factory is not None and hasattr(factory, "cache_clear"):
                factory.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    wiring.reset()


def simulator_class(entry: catalog.Platform) -> Any:
    """The catalog entry's simulator class (``local.simulators.<name>:<Class>``)."""
    assert entry.simulator is not None
    module_name, _, class_name = entry.simulator.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_simulator(entry: catalog.Platform, public_url: str | None = None) -> Any:
    """The entry's simulator with its own fixed local credentials; told where it is served (``public_url``) when
    it asks (a sandbox whose signed webhooks name one of its own URLs, e.g. a certificate's)."""
    cls = simulator_class(entry)
    if public_url is not None and "public_url" in inspect.signature(cls).parameters:
        return cls(public_url=public_url)
    return cls()


@cache
def platform_secrets(name: str) -> dict[str, dict[str, Any]]:
    """The local credentials of platform ``name``'s simulator (``{"api": {...}, "verification": {...}}``): what
    the stack seeds into its secrets, and what an integrator's client uses to call the sandbox."""
    secrets: dict[str, dict[str, Any]] = build_simulator(catalog.platform(name)).local_secrets()
    return secrets


def local_settings(sandbox: str, api: str) -> dict[str, str]:
    """Every platform setting's template parameter with its catalog ``local`` value."""
    return {
        setting.parameter: setting.local.format(sandbox=sandbox, api=api)
        for entry in catalog.platforms()
        for setting in entry.settings
        if setting.local is not None
    }


def listening_socket() -> socket.socket:
    """A socket listening on a free port of 127.0.0.1, held from now on: a port only probed and closed could
    be handed to another process (a parallel test worker's stack) before this stack binds it again."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener


@dataclass
class LocalSettings:
    api_port: int = 3000
    aws_port: int = 0
    refund_outcome_wait_seconds: int = 4
    books_retry_wait_seconds: int = 2
    approval_escalation_seconds: int = 3600
    # How long a refund waits for its return locally (ReturnWaitSeconds; AWS's default is 30 days).
    return_wait_seconds: int = 600
    extra_parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> LocalSettings:
        return cls(
            api_port=int(os.environ.get("REFUNDFLOW_PORT", "3000")),
            aws_port=int(os.environ.get("REFUNDFLOW_AWS_PORT", "4750")),
            refund_outcome_wait_seconds=int(os.environ.get("REFUNDFLOW_REFUND_OUTCOME_WAIT_SECONDS", "4")),
            books_retry_wait_seconds=int(os.environ.get("REFUNDFLOW_BOOKS_RETRY_WAIT_SECONDS", "2")),
            approval_escalation_seconds=int(os.environ.get("REFUNDFLOW_APPROVAL_ESCALATION_SECONDS", "3600")),
            return_wait_seconds=int(os.environ.get("REFUNDFLOW_RETURN_WAIT_SECONDS", "600")),
        )


def local_parameters(api_url: str, settings: LocalSettings) -> dict[str, str]:
    """The template parameters of a local stack whose API (and sandboxes) answer at ``api_url``."""
    return {
        **local_settings(f"{api_url}/_sandbox", api_url),
        "RefundOutcomeWaitSeconds": str(settings.refund_outcome_wait_seconds),
        "BooksRetryWaitSeconds": str(settings.books_retry_wait_seconds),
        "ApprovalEscalationSeconds": str(settings.approval_escalation_seconds),
        "ReturnWaitSeconds": str(settings.return_wait_seconds),
        "ApproverJwtIssuer": f"{api_url}/_local/issuer",
        "PolicyParameterName": LOCAL_POLICY_PARAMETER,
        # The merchant's system (local.simulators.merchant) tells the customers of the web shop's refunds.
        "MerchantWebhookUrl": f"{api_url}/_sandbox/merchant/webhooks/refunds",
        "MerchantWebhookSources": MERCHANT_SHOP,
        **settings.extra_parameters,
    }


class DevStack:
    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self._api_socket: socket.socket | None = None
        self.api_port = self.settings.api_port
        if not self.api_port:
            self._api_socket = listening_socket()
            self.api_port = int(self._api_socket.getsockname()[1])
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.stack = Stack.from_template(STACK_NAME, self._parameters())
        self.functions = LocalFunctions(self.stack)
        self.functions.after_calls.append(self._settlement_object_created)
        # Reconciliation executions started by a file landing in the settlement drop, by its key.
        self.reconciliations: dict[str, str] = {}
        self._reconciliations_lock = threading.Lock()
        self._moto: Any = None
        self._api: Any = None
        self._pollers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.aws_endpoint = ""
        self.simulators: dict[str, Any] = {}
        self._session = boto3.session.Session()

    def _parameters(self) -> dict[str, str]:
        return local_parameters(self.api_url, self.settings)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DevStack:
        moto_patches.check_moto_version()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto logs every Fail state an execution reaches (RefundFailed is an outcome, not a crash).
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        from moto.server import ThreadedMotoServer

        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.settings.aws_port, verbose=False)
        self._moto.start()
        port = self._moto.get_host_and_port()[1]
        self.aws_endpoint = f"http://127.0.0.1:{port}"
        self._configure_process(port)
        requests.post(
            f"{self.aws_endpoint}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
            timeout=5,
        ).raise_for_status()
        moto_patches.patch_nested_executions()
        moto_patches.patch_dynamodb()
        moto_patches.refuse_spent_task_tokens()
        moto_patches.patch_distributed_map()
        moto_patches.route_lambda_invocations(self.functions.invoke_json)
        self._build_simulators()
        self._create_resources()
        self._start_api()
        self._start_queue_pollers()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._api is not None:
            self._api.shutdown()
            self._api.server_close()
        if self._api_socket is not None:
            self._api_socket.close()
        for poller in self._pollers:
            poller.join(timeout=3)
        if self._moto is not None:
            self._moto.stop()
            # moto's backends are process-wide: forget them, so another stack can start in this process.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
        forget_process_caches()

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _configure_process(self, moto_port: int) -> None:
        """The handlers run here, so this process gets the union of their environments."""
        environment: dict[str, str] = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": self.stack.region,
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "MOTO_PORT": str(moto_port),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_DEV": "false",
        }
        essentials = dict(environment)  # the template's empty AWS_ENDPOINT_URL must not hide moto
        # Variables that differ between functions (PLATFORM) are set by LocalFunctions while each module loads.
        own = {name for variables in own_environments(self.stack).values() for name in variables}
        for logical_id in self.stack.of_type("AWS::Serverless::Function"):
            environment.update(
                {name: value for name, value in self.stack.function_environment(logical_id).items() if name not in own}
            )
        environment.update(essentials)
        environment.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"))
        os.environ.update(environment)
        os.environ["POWERTOOLS_LOG_LEVEL"] = os.environ.get("REFUNDFLOW_LOG_LEVEL", "WARNING")
        from refundflow.observability import logger

        logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])
        forget_process_caches()

    # ------------------------------------------------------------------ clients

    def client(self, service: str) -> Any:
        """A client for the stack's own plumbing and for observers (its own session: the handlers'
        calls, made through boto3's default session, are the only ones the benchmarks meter)."""
        return self._session.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.aws_endpoint,
            region_name=self.stack.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 2}),
        )

    # ------------------------------------------------------------------ resources from template.yaml

    def _create_resources(self) -> None:
        stack = self.stack
        dynamodb = self.client("dynamodb")
        for logical_id, resource in stack.of_type("AWS::DynamoDB::Table").items():
            properties = stack.resolve(resource["Properties"])
            arguments = {
                key: properties[key]
                for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
                if key in properties
            }
            if properties.get("StreamSpecification"):
                arguments["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
            dynamodb.create_table(TableName=stack.physical_name(logical_id), **arguments)
            ttl = properties.get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(TableName=stack.physical_name(logical_id), TimeToLiveSpecification=ttl)

        sqs = self.client("sqs")
        queues = stack.of_type("AWS::SQS::Queue")
        ordered = sorted(queues, key=lambda key: "RedrivePolicy" in queues[key].get("Properties", {}))
        for logical_id in ordered:
            properties = stack.resolve(queues[logical_id].get("Properties", {}))
            attributes = {
                key: json.dumps(value) if isinstance(value, dict) else str(value).lower()
                for key, value in properties.items()
                if key in QUEUE_ATTRIBUTES
            }
            sqs.create_queue(QueueName=stack.physical_name(logical_id), Attributes=attributes)

        events = self.client("events")
        for logical_id in stack.of_type("AWS::Events::EventBus"):
            events.create_event_bus(Name=stack.physical_name(logical_id))
        for logical_id, resource in stack.of_type("AWS::Events::Archive").items():
            properties = stack.resolve(resource["Properties"])
            events.create_archive(
                ArchiveName=f"{stack.name}-{logical_id}"[:48],
                EventSourceArn=properties["SourceArn"],
                EventPattern=json.dumps(properties.get("EventPattern", {})),
                RetentionDays=int(properties.get("RetentionDays", 0)),
            )
        for logical_id, resource in stack.of_type("AWS::Events::Rule").items():
            properties = stack.resolve(resource["Properties"])
            name = stack.physical_name(logical_id)
            events.put_rule(
                Name=name, EventBusName=properties["EventBusName"], EventPattern=json.dumps(properties["EventPattern"])
            )
            events.put_targets(
                Rule=name,
                EventBusName=properties["EventBusName"],
                Targets=[
                    {key: target[key] for key in ("Id", "Arn", "SqsParameters", "DeadLetterConfig") if key in target}
                    for target in properties["Targets"]
                ],
            )

        s3 = self.client("s3")
        for logical_id in stack.of_type("AWS::S3::Bucket"):
            s3.create_bucket(Bucket=stack.physical_name(logical_id))

        ses = self.client("ses")
        ses.verify_email_identity(EmailAddress=stack.parameters["NotificationSenderEmail"])
        for _logical_id, resource in stack.of_type("AWS::SES::Template").items():
            ses.create_template(Template=stack.resolve(resource["Properties"]["Template"]))

        secrets = self.client("secretsmanager")
        for name, value in self._secret_values().items():
            secrets.create_secret(Name=name, SecretString=json.dumps(value))
        if stack.parameters.get("PolicyParameterName") == LOCAL_POLICY_PARAMETER:
            self.client("ssm").put_parameter(
                Name=LOCAL_POLICY_PARAMETER, Value=local_policy_text(), Type="String", Tier="Advanced"
            )

        iam = self.client("iam")
        role = iam.create_role(RoleName=f"{stack.name}-local", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambdas = self.client("lambda")
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("app.py", "# runs in-process in the local stack\n")
        for logical_id in stack.of_type("AWS::Serverless::Function"):
            lambdas.create_function(
                FunctionName=stack.physical_name(logical_id),
                Runtime="python3.11",
                Role=role,
                Handler="app.lambda_handler",
                Code={"ZipFile": archive.getvalue()},
            )
        sfn = self.client("stepfunctions")
        machines = stack.of_type("AWS::Serverless::StateMachine")
        # Children first: a parent's definition refers to them.
        for logical_id in sorted(machines, key=lambda key: machines[key]["Properties"].get("Type") != "EXPRESS"):
            properties = machines[logical_id]["Properties"]
            sfn.create_state_machine(
                name=stack.physical_name(logical_id),
                definition=moto_patches.local_definition(stack.definition(logical_id)),
                roleArn=role,
                type=properties.get("Type", "STANDARD"),
            )

    def _secret_values(self) -> dict[str, dict[str, Any]]:
        """Secret name -> value: the stack's own, then each platform's from its simulator (API credentials under
        <prefix><name>, webhook verification under <prefix>webhooks/<name>)."""
        parameters = self.stack.parameters
        values: dict[str, dict[str, Any]] = {
            # A fresh audit MAC key per stack start (refundflow.audit; never a fixed value in the code).
            parameters["AuditKeySecretName"]: {
                "keys": {"local-1": base64.b64encode(token_bytes(32)).decode()},
                "current": "local-1",
            },
            parameters["RefundRequestsSecretName"]: refund_request_secret_document(),
            parameters["DeliveryFailuresSecretName"]: refund_request_secret_document(CARRIER_SIGNING_SECRETS),
        }
        prefix = parameters["SecretsPrefix"]
        merchant = self.simulators.get(MerchantWebhookReceiver.name)
        if merchant is not None:
            values[f"{prefix}merchant-webhook"] = merchant.local_secrets()["api"]
        for entry in catalog.platforms():
            simulator = self.simulators.get(entry.name)
            if simulator is None:
                continue
            secrets = simulator.local_secrets()
            if entry.secrets.api:
                values[entry.api_secret_name(prefix)] = dict(secrets["api"])
            if entry.secrets.verification:
                values[entry.verification_secret_name(prefix)] = dict(secrets["verification"])
        return values

    # ------------------------------------------------------------------ HTTP API and simulators

    def _build_simulators(self) -> None:
        """One simulator per catalog platform that has one, with its own local credentials; platforms that send
        webhooks send them to this stack's /webhooks/<name>."""
        for entry in catalog.platforms():
            if entry.simulator is None:
                continue
            simulator = build_simulator(entry, f"{self.api_url}/_sandbox/{entry.name}")
            if entry.inbound is not None:
                simulator.send_webhooks_to(f"{self.api_url}/webhooks/{entry.name}")
            self.simulators[entry.name] = simulator
        # Not a platform: the merchant's own system, which refundflow's notify function posts refund messages to.
        self.simulators[MerchantWebhookReceiver.name] = MerchantWebhookReceiver()

    def _start_api(self) -> None:
        from werkzeug.serving import make_server

        from local.api import LocalApi

        app = LocalApi(self.stack, self.functions, self.simulators, outputs=self.outputs)
        held = None if self._api_socket is None else self._api_socket.fileno()
        self._api = make_server("127.0.0.1", self.api_port, app, threaded=True, fd=held)
        threading.Thread(target=self._api.serve_forever, name="local-api", daemon=True).start()

    # ------------------------------------------------------------------ SQS event sources

    def _start_queue_pollers(self) -> None:
        for logical_id, queue_arn, batch in self.stack.queue_event_sources():
            poller = threading.Thread(
                target=self._poll_queue, args=(logical_id, queue_arn, batch), name=f"sqs-{logical_id}", daemon=True
            )
            poller.start()
            self._pollers.append(poller)

    def _poll_queue(self, function_id: str, queue_arn: str, batch: int) -> None:
        """What a Lambda SQS event source mapping does, with partial batch responses: failed
        messages come back after a short visibility timeout, then go to the DLQ per RedrivePolicy."""
        sqs = self.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        while not self._stopping.is_set():
            try:
                received = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=batch, WaitTimeSeconds=1, AttributeNames=["All"]
                ).get("Messages", [])
            except Exception:
                return
            if not received:
                continue
            records = [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": self.stack.region,
                }
                for message in received
            ]
            try:
                response = self.functions.invoke(function_id, {"Records": records}) or {}
                failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            except Exception:
                failed = {record["messageId"] for record in records}
            for record in records:
                if record["messageId"] in failed:
                    sqs.change_message_visibility(
                        QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=1
                    )
                else:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])

    # ------------------------------------------------------------------ workflow helpers for demos and tests

    def workflow_arn(self) -> str:
        return self.stack.arn("RefundWorkflowStateMachine")

    def execution_arn(self, refund_id: str) -> str:
        return self.workflow_arn().replace(":stateMachine:", ":execution:") + f":{refund_id}"

    def wait_for_execution(
        self,
        refund_id: str,
        timeout: float = 30.0,
        statuses: tuple[str, ...] = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"),
    ) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            try:
                described: dict[str, Any] = sfn.describe_execution(executionArn=self.execution_arn(refund_id))
                if described["status"] in statuses:
                    return described
            except sfn.exceptions.ExecutionDoesNotExist:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {refund_id} not in {statuses} after {timeout}s")
            time.sleep(0.05)

    # ------------------------------------------------------------------ reconciliation

    def settlement_bucket(self) -> str:
        return self.stack.physical_name("SettlementBucket")

    def reconcile_settlement(self, key: str, body: bytes, timeout: float = 120.0) -> dict[str, Any]:
        """Put a settlement file in the bucket and run the reconciliation state machine on it, with the
        input AWS gives it (EventBridge's "Object Created" event: moto does not emit S3 events to
        EventBridge, so the local stack starts the execution the rule would start)."""
        bucket = self.settlement_bucket()
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
        return self.wait_for_reconciliation(self._start_reconciliation(bucket, key, len(body)), timeout)

    def _start_reconciliation(self, bucket: str, key: str, size: int) -> str:
        event = {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}},
        }
        name = "recon-" + uuid.uuid4().hex[:16]
        with self._reconciliations_lock:  # a boto3 session builds clients one thread at a time
            sfn = self.client("stepfunctions")
        started = sfn.start_execution(
            stateMachineArn=self.stack.arn("ReconciliationStateMachine"), name=name, input=json.dumps(event)
        )
        with self._reconciliations_lock:
            self.reconciliations[key] = started["executionArn"]
        return str(started["executionArn"])

    def wait_for_reconciliation(self, execution_arn: str, timeout: float = 120.0) -> dict[str, Any]:
        """The reconciliation execution once it has ended (polled, up to ``timeout`` seconds)."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"reconciliation {execution_arn} still running after {timeout}s")
            time.sleep(0.05)

    def _settlement_object_created(self, call: AwsCall) -> None:
        """A function put a file in the settlement drop (a payment platform's payout report): start the run the
        bucket's EventBridge rule starts on AWS (``ReconciliationStateMachine``, "Object Created" under
        ``settlement/``). The execution runs on its own; ``reconciliations`` names it by key."""
        if call.service != "s3" or call.operation != "PutObject":
            return
        bucket, key = str(call.params.get("Bucket")), str(call.params.get("Key"))
        if bucket != self.settlement_bucket() or not key.startswith("settlement/"):
            return
        body = call.params.get("Body")
        # The event's size is informational (the state machine does not read it); a streamed body's is not known here.
        self._start_reconciliation(bucket, key, len(body) if isinstance(body, bytes | bytearray) else 0)

    def execution_history(self, refund_id: str) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": self.execution_arn(refund_id), "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def env(self) -> Mapping[str, str]:
        return dict(os.environ)

    def outputs(self) -> dict[str, Any]:
        """What ``aws cloudformation describe-stacks`` says of a deployed stack, for this one: the template's
        Outputs (the API's URLs on the local API, queue URLs on moto; outputs of resources the local stack
        does not make, such as alarms, left out), its parameters, and where its AWS endpoint is. Served at
        ``GET /_local/outputs`` so tools (the refundflow CLI) find the local stack the way they find a
        deployed one."""
        stack = self.stack
        deployed_api = f"https://{stack.physical_name('RefundsApi')}.execute-api.{stack.region}.amazonaws.com"
        values: dict[str, str] = {}
        for name, output in stack.template.get("Outputs", {}).items():
            value = output["Value"]
            target = value.get("Ref") if isinstance(value, dict) else None
            if target in stack.resources and stack.resources[target]["Type"] in NOT_MADE_LOCALLY:
                continue
            try:
                if target in stack.resources and stack.resources[target]["Type"] == "AWS::SQS::Queue":
                    values[name] = stack.queue_url(target, self.aws_endpoint)
                else:
                    values[name] = str(stack.resolve(value)).replace(deployed_api, self.api_url)
            except KeyError:
                continue
        return {
            "StackName": stack.name,
            "Region": stack.region,
            "AwsEndpointUrl": self.aws_endpoint,
            "Outputs": values,
            "Parameters": dict(stack.parameters),
            "Resources": self.resource_summaries(),
        }

    def resource_summaries(self) -> list[dict[str, str]]:
        """The queues and rules the local stack made, as ``ListStackResources`` lists a deployed stack's (a
        queue's physical id is its URL, a rule's on a custom bus ``bus|name``): what the CLI discovers the
        dead-letter queues from."""
        stack = self.stack
        summaries = [
            {
                "LogicalResourceId": logical_id,
                "ResourceType": "AWS::SQS::Queue",
                "PhysicalResourceId": stack.queue_url(logical_id, self.aws_endpoint),
            }
            for logical_id in stack.of_type("AWS::SQS::Queue")
        ]
        summaries += [
            {
                "LogicalResourceId": logical_id,
                "ResourceType": "AWS::Events::Rule",
                "PhysicalResourceId": f"{stack.physical_name_of_bus(logical_id)}|{stack.physical_name(logical_id)}",
            }
            for logical_id in stack.of_type("AWS::Events::Rule")
        ]
        return summaries


def refund_request_secret_document(sources: Mapping[str, tuple[str, ...]] = SOURCE_SIGNING_SECRETS) -> dict[str, Any]:
    """The RefundRequestsSecretName secret (DeliveryFailuresSecretName with the carriers): each source system's own
    signing secrets."""
    return {"sources": {name: {"signing_secrets": list(secrets)} for name, secrets in sources.items()}}


LOCAL_RETURN_WAIT_RULE: dict[str, Any] = {
    "id": "wrong_item_waits_for_return",
    "description": "A wrong item is refunded once it is back: the refund waits for its return",
    "when": "refund.reason == 'wrong_item' && !return_info.received",
    "outcome": "wait_for_return",
    "reason_code": "return_not_received",
}


def local_policy_text() -> str:
    """The packaged default policy with the local sources' allowances: what the local stack decides with
    (through the PolicyParameterName override, as a deployment would). Checked before it is used."""
    import yaml

    from refundflow.policy import load_policy
    from refundflow.policy.engine import PACKAGED_SOURCE

    document = yaml.safe_load(load_default_policy_text())
    document["version"] = f"{document['version']}-local"
    document["sources"] = {name: {"may_assert_roles": roles} for name, roles in SOURCE_ROLES.items()}
    # A wrong item is refunded once it is back: the refund waits for its return (README, The return's lifecycle),
    # ahead of the packaged rule that asks an agent. Every other reason is decided as the packaged policy does.
    rules = document["rules"]
    at = next(index for index, rule in enumerate(rules) if rule["id"] == "return_not_received")
    rules.insert(at, LOCAL_RETURN_WAIT_RULE)
    text = yaml.safe_dump(document, sort_keys=False)
    load_policy(text, source=f"local ({PACKAGED_SOURCE} + local sources)")
    return text


def load_default_policy_text() -> str:
    from importlib import resources

    return resources.files("refundflow.policy").joinpath("default_policy.yaml").read_text(encoding="utf-8")
