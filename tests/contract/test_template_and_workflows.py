"""template.yaml and the two state machines agree with each other and with the code: every placeholder is
substituted, every function a workflow calls may be invoked by it, every error name the workflows retry or
catch is one the code raises, every task is retried and caught, and the IAM stays least-privilege."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.cfn import ROOT, Stack
from refundflow import catalog, errors
from tests.support.iam import AUDIT_WRITERS, POLICY_TEMPLATES, Request, allowed, function_statements

STACK = Stack.from_template("refundflow")
MACHINES = STACK.of_type("AWS::Serverless::StateMachine")
FUNCTIONS = STACK.of_type("AWS::Serverless::Function")
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Raised by Powertools idempotency when the same key is running elsewhere (the step is retried).
LIBRARY_ERRORS = {"IdempotencyAlreadyInProgressError"}
OUR_ERRORS = {
    name for name, value in inspect.getmembers(errors, inspect.isclass) if issubclass(value, errors.RefundflowError)
}


def raw_definition(logical_id: str) -> str:
    return (ROOT / MACHINES[logical_id]["Properties"]["DefinitionUri"]).read_text()


def states(logical_id: str) -> dict[str, dict[str, Any]]:
    """Every state of the machine, those inside a Map's ItemProcessor included."""

    def walk(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name, state in definition["States"].items():
            found[name] = state
            if isinstance(state.get("ItemProcessor"), dict):
                found.update(walk(state["ItemProcessor"]))
        return found

    return walk(json.loads(STACK.definition(logical_id)))


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(logical_id: str) -> None:
    # GIVEN a state machine's ASL and its DefinitionSubstitutions
    used = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", raw_definition(logical_id)))
    declared = set(MACHINES[logical_id]["Properties"].get("DefinitionSubstitutions", {}))
    # THEN they are the same set
    assert used == declared


PLATFORM_FUNCTIONS = {
    entry.logical_id(role): (entry, role) for entry in catalog.platforms() for role in entry.function_roles
}
COMPUTED_NAME = re.compile(
    r"^States\.Format\('arn:aws:lambda:[^:]+:\d+:function:(?P<prefix>[A-Za-z0-9-]+-)\{\}', \$\.\w+\.(\w+)\)$"
)


def invoke_prefixes(logical_id: str) -> set[str]:
    """The function-name prefixes a state machine's role may invoke (statements on ``...:function:<prefix>*``)."""
    prefixes = set()
    for policy in MACHINES[logical_id]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement["Action"] == "lambda:InvokeFunction":
                for resource in statement["Resource"]:
                    arn = str(STACK.resolve(resource))
                    assert arn.endswith("*"), arn
                    prefixes.add(arn.rsplit(":function:", 1)[1].removesuffix("*"))
    return prefixes


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_a_workflow_may_invoke_exactly_the_functions_it_calls(logical_id: str) -> None:
    # GIVEN the functions the ASL's tasks name, and the name prefixes of the platform tasks' computed names
    tasks = [state.get("Parameters", {}) for state in states(logical_id).values()]
    called = {str(task["FunctionName"]).rsplit(":", 1)[1] for task in tasks if "FunctionName" in task}
    computed = {
        match["prefix"]
        for task in tasks
        if "FunctionName.$" in task
        for match in [COMPUTED_NAME.match(str(task["FunctionName.$"]))]
        if match or pytest.fail(f"not a computed platform function name: {task['FunctionName.$']}")
    }
    allowed = {
        STACK.physical_name(str(policy["LambdaInvokePolicy"]["FunctionName"]["Ref"]))
        for policy in MACHINES[logical_id]["Properties"]["Policies"]
        if isinstance(policy, dict) and "LambdaInvokePolicy" in policy
    }
    # THEN the state machine's role may invoke those functions and those prefixes, and no others
    assert called == allowed
    assert computed == invoke_prefixes(logical_id)


def test_the_functions_a_platform_prefix_reaches_are_exactly_the_catalog_platforms_functions() -> None:
    # GIVEN every prefix a workflow (or intake) may invoke
    prefixes = {prefix for logical_id in MACHINES for prefix in invoke_prefixes(logical_id)}
    assert prefixes == {f"{STACK.name}-refund-", f"{STACK.name}-books-"}
    # THEN the functions whose names start with one are the catalog's platform functions, named by convention
    reachable = {
        logical_id
        for logical_id in FUNCTIONS
        if any(STACK.physical_name(logical_id).startswith(prefix) for prefix in prefixes)
    }
    # (a help desk's function is reached by intake's news and its own write-back queue, never by a workflow; the
    # split-tender function is the platform steps' function of a refund with tenders: refund-split)
    platform_steps = {logical_id for logical_id, (_, role) in PLATFORM_FUNCTIONS.items() if role != "ticket"}
    assert reachable == platform_steps | {"SplitTenderFunction"}
    for logical_id, (entry, role) in PLATFORM_FUNCTIONS.items():
        assert STACK.physical_name(logical_id) == entry.function_name(role, STACK.name)
        assert STACK.function_environment(logical_id)["PLATFORM"] == entry.name


def test_no_state_branches_on_a_platform_name() -> None:
    names = {entry.name for entry in catalog.platforms()}
    for logical_id in MACHINES:
        for name, state in states(logical_id).items():
            assert not any(platform.lower() in name.lower() for platform in names), name
            for choice in state.get("Choices", []):
                assert choice.get("StringEquals") not in names, (logical_id, name)


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_error_name_the_workflow_handles_is_one_that_is_raised(logical_id: str) -> None:
    # GIVEN every ErrorEquals of every Retry and Catch
    names = {
        name
        for state in states(logical_id).values()
        for handler in [*state.get("Retry", []), *state.get("Catch", [])]
        for name in handler["ErrorEquals"]
    }
    # THEN each is a States.* error, a Lambda service error, a Step Functions integration error or ours
    unknown = {
        name
        for name in names
        if not name.startswith(("States.", "StepFunctions."))
        and name not in LAMBDA_ERRORS | LIBRARY_ERRORS | OUR_ERRORS
    }
    assert not unknown


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_lambda_task_retries_lambda_service_errors_with_jitter_and_is_caught(logical_id: str) -> None:
    for name, state in states(logical_id).items():
        if state["Type"] != "Task" or "lambda:invoke" not in state["Resource"]:
            continue
        # THEN the Lambda service errors are retried with backoff and full jitter
        lambda_retry = [retry for retry in state.get("Retry", []) if set(retry["ErrorEquals"]) == LAMBDA_ERRORS]
        assert lambda_retry, f"{name} does not retry Lambda service errors"
        assert lambda_retry[0]["BackoffRate"] > 1
        assert lambda_retry[0]["JitterStrategy"] == "FULL"
        # AND anything else is caught (a catch-all), except in the child's own failure handler
        if name != "HandleFailure":
            assert any("States.ALL" in catch["ErrorEquals"] for catch in state.get("Catch", [])), name


def test_a_straight_through_refund_ends_in_the_parents_first_state() -> None:
    # GIVEN the parent workflow WHEN the child completes THEN the first state ends the execution
    first = json.loads(STACK.definition("RefundWorkflowStateMachine"))
    start = first["States"][first["StartAt"]]
    assert start["Resource"].endswith("startExecution.sync:2")
    assert start.get("End") is True
    # AND the child only succeeds when the refund is complete
    child = states("RefundStepsStateMachine")
    succeed = [name for name, state in child.items() if state["Type"] == "Succeed"]
    assert succeed == ["Completed"]


def test_every_function_has_its_handler_build_and_requirements() -> None:
    for logical_id in FUNCTIONS:
        folder = STACK.function_folder(logical_id)
        assert (folder / "app.py").is_file(), logical_id
        assert FUNCTIONS[logical_id]["Metadata"]["BuildMethod"] == "makefile", logical_id
        makefile = (folder / "Makefile").read_text()
        if logical_id in PLATFORM_FUNCTIONS:
            # one shared handler per role; the build target installs that platform's own requirements
            entry, _role = PLATFORM_FUNCTIONS[logical_id]
            assert f"build-{logical_id}: PLATFORM_REQUIREMENTS := requirements-{entry.name}.txt" in makefile
            assert (folder / f"requirements-{entry.name}.txt").is_file(), logical_id
        else:
            assert (folder / "requirements.txt").is_file(), logical_id
            assert "build-%" in makefile, logical_id


def test_functions_run_python_313_on_arm64() -> None:
    function_globals = STACK.template["Globals"]["Function"]
    assert (function_globals["Runtime"], function_globals["Architectures"]) == ("python3.13", ["arm64"])
    for logical_id, resource in FUNCTIONS.items():
        assert "Runtime" not in resource["Properties"], f"{logical_id} overrides the runtime"


def test_no_full_access_policy_and_no_wildcard_resource_outside_log_delivery() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert "FullAccess" not in text
    for logical_id, resource in {**FUNCTIONS, **MACHINES}.items():
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                if statement.get("Resource") == "*":
                    assert all(action.startswith("logs:") for action in statement["Action"]), logical_id


def test_the_openapi_document_lists_exactly_the_template_routes() -> None:
    routes = {
        (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
        for resource in FUNCTIONS.values()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert documented == routes


def test_secrets_are_referenced_by_name_never_inlined() -> None:
    assert not STACK.of_type("AWS::SecretsManager::Secret")
    for logical_id, resource in FUNCTIONS.items():
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            assert not re.search(r"(sk|rk)_(live|test)_|whsec_", str(value)), f"{logical_id}.{name}"


def test_the_readme_documents_both_commands() -> None:
    readme = Path(ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme


# ---------------------------------------------------------------- least privilege (issue 6.7)

REFUNDS_TABLE_ARN = STACK.arn("RefundsTable")
API_FUNCTIONS = {"ReceiveWebhookFunction", "GetRefundFunction", "DecideApprovalFunction"}
PAYMENT_FUNCTIONS = {logical_id for logical_id, (_, role) in PLATFORM_FUNCTIONS.items() if role == "payment"}
TICKET_FUNCTIONS = {logical_id for logical_id, (_, role) in PLATFORM_FUNCTIONS.items() if role == "ticket"}
BOOKS_FUNCTIONS = {logical_id for logical_id, (_, role) in PLATFORM_FUNCTIONS.items() if role == "books"}
# A books platform that sends webhooks sends returns news (SAP's customer returns): its function resumes the refund
# waiting for that return.
RETURNS_NEWS_FUNCTIONS = {
    logical_id
    for logical_id, (entry, role) in PLATFORM_FUNCTIONS.items()
    if role == "books" and entry.inbound is not None
}
# The functions that take a waiting workflow's task token (DeleteItem on REFUND#<id>/WAIT#<kind>): a payment
# platform's function resumes the workflow its webhook news concerns; a help desk's, the refund waiting for the
# approval its ticket gave or withdrew; ReceiveWebhookFunction, the refund a return step lets go on; a books
# platform's with returns news (RETURNS_NEWS_FUNCTIONS), the refund its return lets go on.
TOKEN_TAKERS = {
    "DecideApprovalFunction",
    # a split-tender leg that failed resumes its waiting parent (refundflow.domain.split_tenders.after_leg)
    "HandleFailureFunction",
    "RegisterWaitFunction",
    "ReceiveWebhookFunction",
    *PAYMENT_FUNCTIONS,
    *TICKET_FUNCTIONS,
    *RETURNS_NEWS_FUNCTIONS,
}
# The indexes each function queries (RefundRepository.refunds_for_payment, customer_history).
INDEXES = {
    # by-payment: a split-tender parent's store credit its order's earlier split refunds already gave back
    "EvaluatePolicyFunction": {"by-customer", "by-payment"},
    "SplitTenderFunction": {"by-payment"},
    # the refunds of a payment; ours by the id the platform gave them (news naming only that id)
    **{logical_id: {"by-payment", "by-provider-refund"} for logical_id in PAYMENT_FUNCTIONS},
    "MatchSettlementBatchFunction": {"by-provider-refund"},
    "SummarizeReconciliationFunction": {"by-status"},
    "MeasureQueuesFunction": {"by-status"},
    "WatchAcquirerReferencesFunction": {"by-status"},
}
# SAM event types that attach an AWS managed policy with Resource "*" to the function's role.
PULL_EVENTS = {"SQS", "Kinesis", "DynamoDB", "MSK", "MQ", "SelfManagedKafka", "DocumentDB"}


def dynamodb_request(operation: str, pk: str) -> Request:
    return Request(f"dynamodb:{operation}", REFUNDS_TABLE_ARN, {"dynamodb:LeadingKeys": [pk]})


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_no_function_has_a_crud_read_or_managed_policy(logical_id: str) -> None:
    policies = FUNCTIONS[logical_id]["Properties"].get("Policies", [])
    # THEN every entry is an inline statement list or a resource-scoped SAM template this suite knows
    assert all(isinstance(policy, dict) for policy in policies), "managed policies grant more than we check"
    names = {name for policy in policies for name in policy}
    assert names <= {"Statement", *POLICY_TEMPLATES}, names
    assert not {"DynamoDBCrudPolicy", "DynamoDBReadPolicy", "DynamoDBWritePolicy"} & names
    # AND no event source that makes SAM attach a managed policy with Resource "*"
    events = {event["Type"] for event in FUNCTIONS[logical_id]["Properties"].get("Events", {}).values()}
    assert not events & PULL_EVENTS
    assert "Role" not in FUNCTIONS[logical_id]["Properties"]
    # AND no inline statement on Resource "*" (X-Ray and the basic execution role come from SAM itself)
    for statement in function_statements(STACK, logical_id):
        assert "*" not in statement.resources, statement


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_no_function_may_update_or_delete_an_audit_entry(logical_id: str) -> None:
    statements = function_statements(STACK, logical_id)
    for operation in ("UpdateItem", "DeleteItem"):
        assert not allowed(statements, dynamodb_request(operation, "AUDIT#rf_" + "0" * 32)), operation
    # AND the denial is explicit, so no later Allow can grant it back
    denies = [statement for statement in statements if statement.effect == "Deny"]
    assert any(
        {"dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= set(statement.actions)
        and statement.condition == {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": ["AUDIT#*"]}}
        for statement in denies
    )


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_delete_only_where_the_wait_token_is_taken_and_indexes_only_where_queried(logical_id: str) -> None:
    statements = function_statements(STACK, logical_id)
    may_delete = allowed(statements, dynamodb_request("DeleteItem", "REFUND#rf_1"))
    assert may_delete == (logical_id in TOKEN_TAKERS)
    granted = {
        resource.rsplit("/index/", 1)[1]
        for statement in statements
        if statement.effect == "Allow"
        for resource in statement.resources
        if resource.startswith(REFUNDS_TABLE_ARN + "/index/")
    }
    assert granted == INDEXES.get(logical_id, set())


def test_notify_polls_its_two_queues_and_sends_only_from_the_sender_address() -> None:
    statements = function_statements(STACK, "NotifyFunction")
    queues = {STACK.arn("CustomerNotificationsQueue"), STACK.arn("OpsNotificationsQueue")}
    sqs = [statement for statement in statements if any(action.startswith("sqs:") for action in statement.actions)]
    assert {resource for statement in sqs for resource in statement.resources} == queues
    assert allowed(statements, Request("sqs:ReceiveMessage", STACK.arn("OpsNotificationsQueue")))
    assert not allowed(statements, Request("sqs:ReceiveMessage", STACK.arn("OpsNotificationsDeadLetterQueue")))
    # AND SES only for templated mail whose From is the configured sender
    sender = STACK.parameters["NotificationSenderEmail"]
    identity = f"arn:aws:ses:{STACK.region}:{STACK.account_id}:identity/{sender}"
    ses = [statement for statement in statements if any(action.startswith("ses:") for action in statement.actions)]
    assert [statement.actions for statement in ses] == [("ses:SendTemplatedEmail",)]
    assert allowed(statements, Request("ses:SendTemplatedEmail", identity, {"ses:FromAddress": [sender]}))
    assert not allowed(
        statements, Request("ses:SendTemplatedEmail", identity, {"ses:FromAddress": ["mallory@example.com"]})
    )
    # AND its queues are wired by event source mappings, not by SAM events
    mappings = [
        mapping
        for mapping in STACK.of_type("AWS::Lambda::EventSourceMapping").values()
        if mapping["Properties"]["FunctionName"] == {"Ref": "NotifyFunction"}
    ]
    assert {str(STACK.resolve(mapping["Properties"]["EventSourceArn"])) for mapping in mappings} == queues
    assert {
        (logical_id, arn) for logical_id, arn, _ in STACK.queue_event_sources() if logical_id == "NotifyFunction"
    } == {("NotifyFunction", arn) for arn in queues}


def test_notify_reads_the_merchant_webhooks_secret_and_no_platforms() -> None:
    statements = function_statements(STACK, "NotifyFunction")
    prefix = STACK.parameters["SecretsPrefix"]
    secret = f"arn:aws:secretsmanager:{STACK.region}:{STACK.account_id}:secret:{prefix}"
    assert allowed(statements, Request("secretsmanager:GetSecretValue", f"{secret}merchant-webhook-AbCdEf"))
    for other in ("stripe-AbCdEf", "zendesk-AbCdEf", "webhooks/stripe-AbCdEf", "merchant-webhook-extra-AbCdEf"):
        assert not allowed(statements, Request("secretsmanager:GetSecretValue", f"{secret}{other}")), other
    environment = STACK.function_environment("NotifyFunction")
    assert environment["MERCHANT_WEBHOOK_SECRET_NAME"] == f"{prefix}merchant-webhook"
    assert (environment["MERCHANT_WEBHOOK_URL"], environment["MERCHANT_WEBHOOK_SOURCES"]) == ("", "*")


def test_the_customer_hears_of_the_money_moving_or_failing_and_of_a_late_acquirer_reference_only() -> None:
    rule = STACK.resources["CustomerNotificationsRule"]["Properties"]
    assert sorted(rule["EventPattern"]["detail-type"]) == ["RefundAcquirerReference", "RefundFailed", "RefundIssued"]
    templates = {
        str(STACK.resolve(resource["Properties"]["Template"]["TemplateName"]))
        for resource in STACK.of_type("AWS::SES::Template").values()
    }
    names = ("refund-issued", "refund-failed", "refund-acquirer-reference", "ops-alert")
    assert templates == {f"refundflow-{name}" for name in names}


def test_every_queue_event_source_is_notify_or_a_platforms_own_queue() -> None:
    # GIVEN every SQS event source of the template
    sources = {(logical_id, arn) for logical_id, arn, _ in STACK.queue_event_sources()}
    # THEN besides Notify's two queues, each help desk's function polls its own FIFO write-back queue, each books
    # platform's function its own queue of refunds made outside refundflow, and each only its own
    write_backs = {
        (logical_id, STACK.arn(logical_id.removesuffix("Function") + "WriteBackQueue"))
        for logical_id in TICKET_FUNCTIONS
    }
    external = {
        (logical_id, STACK.arn(logical_id.removesuffix("Function") + "ExternalRefundsQueue"))
        for logical_id in BOOKS_FUNCTIONS
    }
    notify = {(logical_id, arn) for logical_id, arn in sources if logical_id == "NotifyFunction"}
    assert sources == notify | write_backs | external
    for logical_id, arn in write_backs:
        entry, _ = PLATFORM_FUNCTIONS[logical_id]
        assert arn.endswith(f"-ticket-{entry.name}.fifo")
    for logical_id, arn in external:
        entry, _ = PLATFORM_FUNCTIONS[logical_id]
        assert arn.endswith(f"-books-{entry.name}-external")
    polled = write_backs | external
    for logical_id, arn in polled:
        statements = function_statements(STACK, logical_id)
        assert allowed(statements, Request("sqs:ReceiveMessage", arn))
        others = {queue for _, queue in polled if queue != arn}
        assert not any(allowed(statements, Request("sqs:ReceiveMessage", queue)) for queue in others)


def test_a_books_platforms_queue_gets_only_external_refunds_whose_invoice_is_in_its_books() -> None:
    # GIVEN each books platform's rule on the bus
    for logical_id in BOOKS_FUNCTIONS:
        entry, _ = PLATFORM_FUNCTIONS[logical_id]
        base = logical_id.removesuffix("Function")
        rule = STACK.resources[base + "ExternalRefundsRule"]["Properties"]
        # THEN it matches the RefundIssued of refunds of origin external booked in these books, nothing else
        assert rule["EventPattern"] == {
            "source": ["refundflow"],
            "detail-type": ["RefundIssued"],
            "detail": {"origin": ["external"], "books": [entry.name]},
        }
        [target] = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [base + "ExternalRefundsQueue", "Arn"]}
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [base + "ExternalRefundsDeadLetterQueue", "Arn"]}
        # AND the queue hands a message to the DLQ only after more deliveries than the books attempts allowed
        queue = STACK.resources[base + "ExternalRefundsQueue"]["Properties"]
        assert queue["RedrivePolicy"]["maxReceiveCount"] > 96
        assert queue["VisibilityTimeout"] == {"Ref": "BooksRetryWaitSeconds"}


# ---------------------------------------------------------------- operations (issue 6.7)


def test_api_access_logs_go_to_a_log_group_with_retention_and_say_who_asked_what() -> None:
    (api,) = STACK.of_type("AWS::Serverless::HttpApi").values()
    settings = api["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "RetentionInDays" in STACK.resources["ApiAccessLogGroup"]["Properties"]
    record = json.loads(settings["Format"])
    assert {
        "$context.requestId",
        "$context.identity.sourceIp",
        "$context.routeKey",
        "$context.status",
        "$context.authorizer.error",
        "$context.integrationErrorMessage",
    } <= set(record.values())


def test_every_route_is_throttled() -> None:
    (api,) = STACK.of_type("AWS::Serverless::HttpApi").values()
    properties = api["Properties"]
    default = properties["DefaultRouteSettings"]
    assert default["ThrottlingBurstLimit"] > 0
    assert default["ThrottlingRateLimit"] > 0
    routes = {
        f"{event['Properties']['Method'].upper()} {event['Properties']['Path']}"
        for resource in FUNCTIONS.values()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    assert set(properties["RouteSettings"]) == routes
    for route, limits in properties["RouteSettings"].items():
        assert 0 < limits["ThrottlingRateLimit"] <= default["ThrottlingRateLimit"], route
        assert 0 < limits["ThrottlingBurstLimit"] <= default["ThrottlingBurstLimit"], route


@pytest.mark.parametrize("logical_id", sorted(API_FUNCTIONS))
def test_api_functions_have_reserved_concurrency_from_a_parameter(logical_id: str) -> None:
    reserved = FUNCTIONS[logical_id]["Properties"]["ReservedConcurrentExecutions"]
    parameter = STACK.template["Parameters"][reserved["Ref"]]
    assert parameter["Type"] == "Number"
    assert parameter["Default"] >= 1


def test_every_function_and_workflow_logs_to_a_declared_group_with_retention() -> None:
    groups = STACK.of_type("AWS::Logs::LogGroup")
    assert all("RetentionInDays" in group["Properties"] for group in groups.values())
    names = {STACK.resolve(group["Properties"]["LogGroupName"]) for group in groups.values()}
    for logical_id in FUNCTIONS:
        assert f"/aws/lambda/{STACK.physical_name(logical_id)}" in names, logical_id
    for logical_id, machine in MACHINES.items():
        logging_config = machine["Properties"]["Logging"]
        # THEN errors are logged, without the execution data (refund contents stay out of the logs)
        assert (logging_config["Level"], logging_config["IncludeExecutionData"]) == ("ERROR", False), logical_id
        (destination,) = logging_config["Destinations"]
        group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert group in groups, logical_id


def test_every_url_parameter_must_be_https() -> None:
    parameters = STACK.template["Parameters"]
    urls = {name for name, spec in parameters.items() if str(spec.get("Default", "")).startswith("http")}
    https_settings = {setting.parameter for entry in catalog.platforms() for setting in entry.settings if setting.https}
    assert https_settings | {"ApproverJwtIssuer"} <= urls
    for name in urls:
        assert parameters[name].get("AllowedPattern") == "^https://", name
        assert re.match(parameters[name]["AllowedPattern"], parameters[name]["Default"]), name


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_only_the_audit_writers_and_the_status_api_may_read_the_audit_key(logical_id: str) -> None:
    name = STACK.parameters["AuditKeySecretName"]
    secret = f"arn:aws:secretsmanager:{STACK.region}:{STACK.account_id}:secret:{name}-AbCdEf"
    may_read = allowed(function_statements(STACK, logical_id), Request("secretsmanager:GetSecretValue", secret))
    assert may_read == (logical_id in AUDIT_WRITERS | {"GetRefundFunction"})
    assert STACK.function_environment(logical_id)["AUDIT_KEY_SECRET_NAME"] == name


# ---------------------------------------------------------------- platforms: secrets by direction, news forwarding


def secret_arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{STACK.region}:{STACK.account_id}:secret:{name}-AbCdEf"


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_api_credentials_only_in_their_platform_s_function_verification_secrets_only_in_intake(logical_id: str) -> None:
    statements = function_statements(STACK, logical_id)
    prefix = STACK.parameters["SecretsPrefix"]
    for entry in catalog.platforms():
        own = PLATFORM_FUNCTIONS.get(logical_id, (None, None))[0] is entry
        may_read_api = allowed(
            statements, Request("secretsmanager:GetSecretValue", secret_arn(entry.api_secret_name(prefix)))
        )
        assert may_read_api == own, entry.name
        verification = secret_arn(entry.verification_secret_name(prefix))
        may_read_verification = allowed(statements, Request("secretsmanager:GetSecretValue", verification))
        assert may_read_verification == (logical_id == "ReceiveWebhookFunction"), entry.name
        may_write_api = allowed(
            statements, Request("secretsmanager:PutSecretValue", secret_arn(entry.api_secret_name(prefix)))
        )
        assert may_write_api == (own and entry.secrets.rotated_in_place), entry.name
    if logical_id in PLATFORM_FUNCTIONS:
        assert STACK.function_environment(logical_id)["SECRETS_PREFIX"] == prefix


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_only_intake_forwards_news_and_only_to_payment_platform_functions(logical_id: str) -> None:
    # (and to the help desks' functions: their tickets' news; and to the books functions of the platforms that send
    # returns news, no other books function)
    statements = function_statements(STACK, logical_id)
    for target in FUNCTIONS:
        may_invoke = allowed(statements, Request("lambda:InvokeFunction", STACK.arn(target)))
        forwarded_to = PAYMENT_FUNCTIONS | TICKET_FUNCTIONS | RETURNS_NEWS_FUNCTIONS
        # The acquirer reference schedule has each refund read by its payment platform's function, and the
        # split-tender function reads each tender through its payment platform's function: no other.
        rereads = logical_id == "WatchAcquirerReferencesFunction" and target in PAYMENT_FUNCTIONS
        reads_tenders = logical_id == "SplitTenderFunction" and target in PAYMENT_FUNCTIONS
        assert may_invoke == (
            (logical_id == "ReceiveWebhookFunction" and target in forwarded_to) or rereads or reads_tenders
        ), target
    if logical_id == "ReceiveWebhookFunction":
        assert STACK.function_environment(logical_id)["PLATFORM_FUNCTION_PREFIX"] == f"{STACK.name}-"


def test_one_webhook_route_serves_every_platform() -> None:
    paths = {
        event["Properties"]["Path"]
        for resource in FUNCTIONS.values()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi" and event["Properties"]["Path"].startswith("/webhooks")
    }
    assert paths == {"/webhooks/{platform}"}
