"""The local stack: refundflow on this machine without AWS or Docker.

moto (threaded server) plays DynamoDB, Step Functions, EventBridge, SQS, Secrets Manager and SES;
the resources come from template.yaml; the functions run in-process; the real ASL runs on moto's
interpreter; an HTTP server maps the template's API routes to the handlers (API Gateway v2 events)
and serves the sandbox simulators under /_sandbox/<platform>. Only configuration differs from AWS.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from secrets import token_bytes
from typing import Any

import boto3
import requests
from botocore.config import Config

from local import moto_patches
from local.cfn import Stack
from local.lambdas import LocalFunctions

STACK_NAME = "refundflow-local"


def _local_signing_secret(label: str) -> str:
    """A Standard Webhooks secret (whsec_ + base64 of 32 bytes) that is the same on every run."""
    return "whsec_" + base64.b64encode(f"refundflow-local-{label}".ljust(32, "!")[:32].encode()).decode()


# The local stack's credentials: sandbox values, documented in the README, never real ones.
# Each source system that posts refund requests locally has its own signing secrets (the help desk two,
# as during a rotation): the demo and the e2e suite use the returns portal and the help desk, the README's
# curl session "curl", the benchmarks "bench".
SOURCE_SIGNING_SECRETS: dict[str, tuple[str, ...]] = {
    "returns-portal": (_local_signing_secret("returns-portal"),),
    "helpdesk": (_local_signing_secret("helpdesk"), _local_signing_secret("helpdesk-previous")),
    "curl": (_local_signing_secret("curl"),),
    "bench": (_local_signing_secret("bench"),),
}
# Which roles each local source may assert in approved_by: the local policy's sources: section (the
# packaged policy trusts no source). The help desk stands for a help desk whose group-to-role mapping is
# trusted up to team lead; the others assert nothing.
SOURCE_ROLES: dict[str, list[str]] = {"returns-portal": [], "helpdesk": ["agent", "team_lead"], "curl": [], "bench": []}
LOCAL_POLICY_PARAMETER = "/refundflow/local/policy"
STRIPE_API_KEY = "sk_test_refundflow_local"
STRIPE_WEBHOOK_SECRET = "whsec_refundflow_local_stripe"
XERO_CLIENT_ID = "refundflow-local-client"
XERO_CLIENT_SECRET = "refundflow-local-client-secret"
XERO_REFRESH_TOKEN = "refundflow-local-refresh-token"
XERO_TENANT_ID = "8f2c1c1e-5b7d-4c1a-9d2e-0c0ffee00001"


def forget_process_caches() -> None:
    """Clients, settings and secrets the handlers cached point at the previous stack: drop them all."""
    from aws_lambda_powertools.utilities import parameters

    from refundflow import wiring
    from refundflow.adapters import aws, idempotency
    from refundflow.connectors.stripe import stripe_provider
    from refundflow.connectors.xero import xero_books
    from refundflow.policy import active_policy

    for cached in (aws.client, idempotency._store, idempotency._config, stripe_provider, xero_books, active_policy):
        cached.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    wiring.reset()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalSettings:
    api_port: int = 3000
    aws_port: int = 0
    refund_outcome_wait_seconds: int = 4
    books_retry_wait_seconds: int = 2
    approval_escalation_seconds: int = 3600
    extra_parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> LocalSettings:
        return cls(
            api_port=int(os.environ.get("REFUNDFLOW_PORT", "3000")),
            aws_port=int(os.environ.get("REFUNDFLOW_AWS_PORT", "4750")),
            refund_outcome_wait_seconds=int(os.environ.get("REFUNDFLOW_REFUND_OUTCOME_WAIT_SECONDS", "4")),
            books_retry_wait_seconds=int(os.environ.get("REFUNDFLOW_BOOKS_RETRY_WAIT_SECONDS", "2")),
            approval_escalation_seconds=int(os.environ.get("REFUNDFLOW_APPROVAL_ESCALATION_SECONDS", "3600")),
        )


class DevStack:
    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self.api_port = self.settings.api_port or free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.stack = Stack.from_template(STACK_NAME, self._parameters())
        self.functions = LocalFunctions(self.stack)
        self._moto: Any = None
        self._api: Any = None
        self._pollers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.aws_endpoint = ""
        self.simulators: dict[str, Any] = {}
        self._session = boto3.session.Session()

    def _parameters(self) -> dict[str, str]:
        sandbox = f"{self.api_url}/_sandbox"
        return {
            "StripeApiBase": f"{sandbox}/stripe",
            "XeroApiBase": f"{sandbox}/xero/api.xro/2.0",
            "XeroIdentityBase": f"{sandbox}/xero/identity",
            "RefundOutcomeWaitSeconds": str(self.settings.refund_outcome_wait_seconds),
            "BooksRetryWaitSeconds": str(self.settings.books_retry_wait_seconds),
            "ApprovalEscalationSeconds": str(self.settings.approval_escalation_seconds),
            "ApproverJwtIssuer": f"{self.api_url}/_local/issuer",
            "PolicyParameterName": LOCAL_POLICY_PARAMETER,
            **self.settings.extra_parameters,
        }

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
        moto_patches.route_lambda_invocations(self.functions.invoke_json)
        self._create_resources()
        self._start_simulators_and_api()
        self._start_queue_pollers()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._api is not None:
            self._api.shutdown()
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
        for logical_id in self.stack.of_type("AWS::Serverless::Function"):
            environment.update(self.stack.function_environment(logical_id))
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
                key: json.dumps(value) if isinstance(value, dict) else str(value)
                for key, value in properties.items()
                if key in {"VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"}
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
                Targets=[{"Id": target["Id"], "Arn": target["Arn"]} for target in properties["Targets"]],
            )

        ses = self.client("ses")
        ses.verify_email_identity(EmailAddress=stack.parameters["NotificationSenderEmail"])
        for _logical_id, resource in stack.of_type("AWS::SES::Template").items():
            ses.create_template(Template=stack.resolve(resource["Properties"]["Template"]))

        secrets = self.client("secretsmanager")
        for parameter, value in self._secret_values().items():
            secrets.create_secret(Name=stack.parameters[parameter], SecretString=json.dumps(value))
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
                definition=stack.definition(logical_id),
                roleArn=role,
                type=properties.get("Type", "STANDARD"),
            )

    def _secret_values(self) -> dict[str, dict[str, Any]]:
        return {
            # A fresh audit MAC key per stack start (refundflow.audit; never a fixed value in the code).
            "AuditKeySecretName": {
                "keys": {"local-1": base64.b64encode(token_bytes(32)).decode()},
                "current": "local-1",
            },
            "RefundRequestsSecretName": refund_request_secret_document(),
            "StripeSecretName": {"api_key": STRIPE_API_KEY, "webhook_secrets": [STRIPE_WEBHOOK_SECRET]},
            "XeroSecretName": {
                "client_id": XERO_CLIENT_ID,
                "client_secret": XERO_CLIENT_SECRET,
                "refresh_token": XERO_REFRESH_TOKEN,
                "tenant_id": XERO_TENANT_ID,
            },
        }

    # ------------------------------------------------------------------ HTTP API and simulators

    def _start_simulators_and_api(self) -> None:
        from werkzeug.serving import make_server

        from local.api import LocalApi
        from local.simulators.stripe import StripeSimulator
        from local.simulators.xero import XeroSimulator

        stripe = StripeSimulator(api_keys=[STRIPE_API_KEY])
        stripe.webhooks.configure(f"{self.api_url}/webhooks/stripe", STRIPE_WEBHOOK_SECRET)
        xero = XeroSimulator(
            client_id=XERO_CLIENT_ID,
            client_secret=XERO_CLIENT_SECRET,
            refresh_token=XERO_REFRESH_TOKEN,
            tenant_id=XERO_TENANT_ID,
        )
        self.simulators = {"stripe": stripe, "xero": xero}
        app = LocalApi(self.stack, self.functions, self.simulators)
        self._api = make_server("127.0.0.1", self.api_port, app, threaded=True)
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


def refund_request_secret_document(sources: Mapping[str, tuple[str, ...]] = SOURCE_SIGNING_SECRETS) -> dict[str, Any]:
    """The RefundRequestsSecretName secret: each source system's own signing secrets."""
    return {"sources": {name: {"signing_secrets": list(secrets)} for name, secrets in sources.items()}}


def local_policy_text() -> str:
    """The packaged default policy with the local sources' allowances: what the local stack decides with
    (through the PolicyParameterName override, as a deployment would). Checked before it is used."""
    import yaml

    from refundflow.policy import load_policy
    from refundflow.policy.engine import PACKAGED_SOURCE

    document = yaml.safe_load(load_default_policy_text())
    document["version"] = f"{document['version']}-local"
    document["sources"] = {name: {"may_assert_roles": roles} for name, roles in SOURCE_ROLES.items()}
    text = yaml.safe_dump(document, sort_keys=False)
    load_policy(text, source=f"local ({PACKAGED_SOURCE} + local sources)")
    return text


def load_default_policy_text() -> str:
    from importlib import resources

    return resources.files("refundflow.policy").joinpath("default_policy.yaml").read_text(encoding="utf-8")
