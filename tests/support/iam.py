"""Just enough IAM to check the template's function policies: the statements each function's role gets
(inline statements plus the SAM policy templates it uses, expanded as SAM expands them), the IAM actions,
resources and condition keys an AWS API call needs, and Allow/Deny evaluation with the condition operators
the template uses. Unknown policy templates, operators or operations raise: extend them here, never skip.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.cfn import Stack
from refundflow import catalog

# The functions that append audit entries (they hold the audit key and sign with it); GetRefundFunction only
# verifies. One list for the least-privilege contract test and the audit-MAC benchmark.
AUDIT_WRITERS = frozenset(
    {
        "ReceiveWebhookFunction",
        "ValidateRefundFunction",
        "EvaluatePolicyFunction",
        "ReserveAmountFunction",
        "SplitTenderFunction",
        *(entry.logical_id(role) for entry in catalog.platforms() for role in entry.function_roles),
        "HandleFailureFunction",
        "DecideApprovalFunction",
        "EscalateApprovalFunction",
        # Reconciliation: SETTLED, mismatches and late failures go on the refunds' audit trails.
        "MatchSettlementBatchFunction",
        "SummarizeReconciliationFunction",
    }
)

# SAM policy templates (github.com/aws/serverless-application-model, policy_templates.json): their actions and
# the resource they grant them on, from the template's parameters.
POLICY_TEMPLATES: dict[str, tuple[list[str], str]] = {
    "EventBridgePutEventsPolicy": (["events:PutEvents"], "arn:aws:events:{region}:{account}:event-bus/{EventBusName}"),
    "StepFunctionsExecutionPolicy": (
        ["states:StartExecution"],
        "arn:aws:states:{region}:{account}:stateMachine:{StateMachineName}",
    ),
    "AWSSecretsManagerGetSecretValuePolicy": (
        ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "{SecretArn}",
    ),
    "SQSPollerPolicy": (
        [
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        "arn:aws:sqs:{region}:{account}:{QueueName}",
    ),
}
_SERVICE_PREFIX = {"stepfunctions": "states", "sesv2": "ses"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def covers(self, action: str, resource: str | None) -> bool:
        if not any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in self.actions):
            return False
        return resource is None or any(fnmatch.fnmatchcase(resource, pattern) for pattern in self.resources)

    def condition_holds(self, context: Mapping[str, list[str]]) -> bool:
        for operator, keys in self.condition.items():
            for key, expected in keys.items():
                values = context.get(key, [])
                patterns = [str(value) for value in _as_list(expected)]
                if operator in {"StringEquals", "ForAnyValue:StringEquals"}:
                    matched = any(value in patterns for value in values)
                elif operator in {"StringLike", "ForAnyValue:StringLike"}:
                    matched = any(fnmatch.fnmatchcase(value, pattern) for value in values for pattern in patterns)
                else:
                    raise NotImplementedError(f"condition operator {operator}")
                if not matched:
                    return False
        return True


@dataclass(frozen=True)
class Request:
    """What IAM authorises for one API call (a transaction needs one per item)."""

    action: str
    resource: str | None  # None: the action has no resource-level check we can model (e.g. SendTaskSuccess)
    context: Mapping[str, list[str]] = field(default_factory=dict)


def function_statements(stack: Stack, logical_id: str) -> list[Statement]:
    """The statements of a function's role: inline ``Statement`` lists and expanded SAM policy templates.

    Raises:
        KeyError: a policy template this module does not know (add it to POLICY_TEMPLATES).
        ValueError: a managed policy (a string entry): its statements cannot be checked here.
    """
    statements: list[Statement] = []
    for policy in stack.resources[logical_id]["Properties"].get("Policies", []):
        if not isinstance(policy, dict):
            raise ValueError(f"{logical_id}: managed policy {policy!r}")
        for name, parameters in policy.items():
            if name == "Statement":
                for raw in stack.resolve(parameters):
                    if "NotAction" in raw or "NotResource" in raw:
                        raise NotImplementedError("NotAction/NotResource")
                    statements.append(
                        Statement(
                            effect=raw["Effect"],
                            actions=tuple(_as_list(raw["Action"])),
                            resources=tuple(str(item) for item in _as_list(raw["Resource"])),
                            condition=raw.get("Condition", {}),
                        )
                    )
                continue
            actions, resource = POLICY_TEMPLATES[name]
            values = {key: str(value) for key, value in stack.resolve(parameters).items()}
            arn = resource.format(region=stack.region, account=stack.account_id, **values)
            statements.append(Statement("Allow", tuple(actions), (arn,)))
    return statements


def allowed(statements: Iterable[Statement], request: Request) -> bool:
    """An explicit Deny wins; otherwise some Allow must cover the action, the resource and its condition."""
    statements = list(statements)
    for statement in statements:
        denies = statement.effect == "Deny" and statement.covers(request.action, request.resource)
        if denies and statement.condition_holds(request.context):
            return False
    return any(
        statement.effect == "Allow"
        and statement.covers(request.action, request.resource)
        and statement.condition_holds(request.context)
        for statement in statements
    )


class Requests:
    """Turns recorded API calls into what IAM authorises for them, with the local stack's ARNs."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._partition_keys = {
            stack.physical_name(logical_id): next(
                key["AttributeName"] for key in table["Properties"]["KeySchema"] if key["KeyType"] == "HASH"
            )
            for logical_id, table in stack.of_type("AWS::DynamoDB::Table").items()
        }

    def _arn(self, service: str, rest: str) -> str:
        return f"arn:aws:{service}:{self.stack.region}:{self.stack.account_id}:{rest}"

    def _item(self, operation: str, table: str, key: Mapping[str, Any] | None) -> Request:
        context: dict[str, list[str]] = {}
        if key is not None:
            value = key.get(self._partition_keys[table], {})
            context["dynamodb:LeadingKeys"] = [str(next(iter(value.values())))] if value else []
        return Request(f"dynamodb:{operation}", self._arn("dynamodb", f"table/{table}"), context)

    def of(self, service: str, operation: str, params: Mapping[str, Any]) -> list[Request]:
        if service == "dynamodb":
            return self._dynamodb(operation, params)
        prefix = _SERVICE_PREFIX.get(service, service)
        action = f"{prefix}:{operation}"
        if service == "secretsmanager":
            secret = str(params["SecretId"])
            arn = secret if secret.startswith("arn:") else self._arn("secretsmanager", f"secret:{secret}-AbCdEf")
            return [Request(action, arn)]
        if service == "events" and operation == "PutEvents":
            buses = {str(entry.get("EventBusName", "default")) for entry in params["Entries"]}
            return [
                Request(action, bus if bus.startswith("arn:") else self._arn("events", f"event-bus/{bus}"))
                for bus in sorted(buses)
            ]
        if service == "stepfunctions":
            if operation == "StartExecution":
                return [Request(action, str(params["stateMachineArn"]))]
            if operation in {"SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"}:
                return [Request(action, None)]
        if service == "ssm" and operation in {"GetParameter", "GetParameters"}:
            names = [params["Name"]] if "Name" in params else list(params["Names"])
            return [Request(action, self._arn("ssm", f"parameter/{str(name).lstrip('/')}")) for name in names]
        if service == "ses" and operation == "SendTemplatedEmail":
            source = str(params["Source"]).rsplit("<", 1)[-1].rstrip(">")
            return [Request(action, self._arn("ses", f"identity/{source}"), {"ses:FromAddress": [source]})]
        if service == "sqs":
            # GetQueueUrl names the queue (a help desk's function finds its write-back queue to delay a redelivery)
            name = (
                str(params["QueueName"]) if operation == "GetQueueUrl" else str(params["QueueUrl"]).rsplit("/", 1)[-1]
            )
            return [Request(action, self._arn("sqs", name))]
        if service == "lambda" and operation == "Invoke":
            function = str(params["FunctionName"])
            arn = function if function.startswith("arn:") else self._arn("lambda", f"function:{function}")
            return [Request("lambda:InvokeFunction", arn)]
        if service == "s3" and "Bucket" in params and "Key" in params:
            # Object operations (multipart parts and completion authorise as s3:PutObject, as on AWS).
            multipart = {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
            return [
                Request(
                    "s3:PutObject" if operation in multipart else action,
                    f"arn:aws:s3:::{params['Bucket']}/{params['Key']}",
                )
            ]
        raise NotImplementedError(f"no IAM mapping for {service}:{operation}")

    def _dynamodb(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        if operation == "TransactWriteItems":
            requests = []
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                requests.append(self._item(_TRANSACT[kind], body["TableName"], body.get("Key") or body.get("Item")))
            return requests
        if operation == "TransactGetItems":
            return [
                self._item("GetItem", item["Get"]["TableName"], item["Get"]["Key"]) for item in params["TransactItems"]
            ]
        if operation in {"BatchGetItem", "BatchWriteItem"}:
            return [self._item(operation, table, None) for table in params["RequestItems"]]
        table = str(params["TableName"])
        if operation in {"Query", "Scan"}:
            rest = f"table/{table}" + (f"/index/{params['IndexName']}" if "IndexName" in params else "")
            return [Request(f"dynamodb:{operation}", self._arn("dynamodb", rest))]
        if operation in {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}:
            return [self._item(operation, table, params.get("Key") or params.get("Item"))]
        raise NotImplementedError(f"no IAM mapping for dynamodb:{operation}")
