"""The dashboard and the alarms in template.yaml watch metrics that exist: every alarm the issue names is there,
parameterised and sent to the ops topic; every metric an alarm or a widget reads is one the code emits
(namespace, name, dimensions and their values) or an AWS metric of a resource of this template."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.cfn import load_template
from refundflow import catalog
from refundflow.domain import recorder
from refundflow.events import APPROVAL_ESCALATED, EVENT_FOR_STATUS, RECONCILIATION_MISMATCH
from refundflow.observability import DIMENSIONED_METRICS, NAMESPACE, SERVICE
from refundflow.status import RefundStatus

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
ALARMS = {key: value["Properties"] for key, value in RESOURCES.items() if value["Type"] == "AWS::CloudWatch::Alarm"}
TOPIC = "OpsAlarmTopic"

# The alarms issue 15 asks for, and the metric each one watches.
REQUIRED_ALARMS = {
    "NeedsAttentionAlarm": ("Refundflow", "RefundNeedsAttention"),  # any NEEDS_ATTENTION
    "ApprovalOverdueAlarm": ("Refundflow", "RefundApprovalEscalated"),  # approvals older than the escalation window
    "OldestApprovalAlarm": ("Refundflow", "OldestWaitingAgeSeconds"),  # ... also while they wait (a live gauge)
    "CustomerNotificationsDlqAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),  # DLQ depth above 0
    "OpsNotificationsDlqAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    "WorkflowExecutionsFailedAlarm": ("AWS/States", "ExecutionsFailed"),  # the parent's failed executions
    "Intake5xxAlarm": ("AWS/ApiGateway", "5xx"),
    "ProviderErrorRateAlarm": ("Refundflow", "ProviderErrors"),  # with ProviderCalls: a rate
}
# Refundflow metrics: one per refund event with the service dimension (Powertools, RefundRecorder._publish) ...
EVENT_METRICS = {*EVENT_FOR_STATUS.values(), APPROVAL_ESCALATED, RECONCILIATION_MISMATCH}
# ... and the dimensioned ones (observability.publish_metrics), with the values each dimension takes.
DIMENSION_VALUES = {
    "status": {status.value for status in RefundStatus},
    "reason": {
        recorder.BOOKS_UPDATE_FAILED,
        recorder.BOOKS_REJECTED,
        recorder.OUTCOME_UNKNOWN,
        recorder.PROVIDER_REVERSED,
        recorder.AMOUNT_MISMATCH,
        recorder.OUTCOME_UNRESOLVED,
        recorder.OUTCOME_NOT_REPORTED,
        recorder.BOOKS_PENDING,
    },
    "platform": set(catalog.names()),
    "decision": {status.value for status in recorder.APPROVER_DECISIONS},
}
# AWS metrics: (namespace, metric) -> the dimension naming a resource, and that resource's type and reference.
AWS_METRICS = {
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): ("QueueName", "AWS::SQS::Queue", "GetAtt:QueueName"),
    **{
        ("AWS/States", name): ("StateMachineArn", "AWS::Serverless::StateMachine", "Ref")
        for name in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut")
    },
    **{("AWS/ApiGateway", name): ("ApiId", "AWS::Serverless::HttpApi", "Ref") for name in ("Count", "4xx", "5xx")},
    **{
        ("AWS/DynamoDB", name): ("TableName", "AWS::DynamoDB::Table", "Ref")
        for name in ("ConsumedWriteCapacityUnits", "ConsumedReadCapacityUnits")
    },
    ("AWS/Lambda", "Invocations"): ("FunctionName", "AWS::Serverless::Function", "Ref"),
}


def reference(value: Any) -> str:
    """A template reference as one marker string: ``Ref:X``, ``GetAtt:X.Attr``, or the literal."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"Ref:{value['Ref']}"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"GetAtt:{logical_id}.{attribute}"
    return str(value)


def check_metric(namespace: str, name: str, dimensions: dict[str, str]) -> None:
    """Fail unless the metric is one the code emits, or an AWS metric of one of this template's resources."""
    if namespace == NAMESPACE:
        assert dimensions.get("service") == SERVICE, (name, dimensions)
        extra = {key: value for key, value in dimensions.items() if key != "service"}
        if name in EVENT_METRICS:
            assert extra == {}, f"{name} is published with the service dimension only, not {extra}"
            return
        assert name in DIMENSIONED_METRICS, f"no code emits {NAMESPACE}/{name}"
        dimension = DIMENSIONED_METRICS[name][0]
        assert set(extra) == {dimension}, f"{name} is published with service and {dimension}, not {sorted(extra)}"
        assert extra[dimension] in DIMENSION_VALUES[dimension], f"{name}: {dimension}={extra[dimension]} never emitted"
        return
    assert (namespace, name) in AWS_METRICS, f"unexpected metric {namespace}/{name}"
    dimension, resource_type, kind = AWS_METRICS[namespace, name]
    assert set(dimensions) == {dimension}, (namespace, name, dimensions)
    marker = dimensions[dimension]
    expected_kind, _, attribute = kind.partition(":")
    match = re.fullmatch(rf"{expected_kind}:([A-Za-z0-9]+)" + (rf"\.{attribute}" if attribute else ""), marker)
    assert match, f"{namespace}/{name} {dimension}={marker}: expected a {kind} of a {resource_type}"
    assert RESOURCES.get(match[1], {}).get("Type") == resource_type, f"{match[1]} is not a {resource_type}"


def test_the_template_publishes_metrics_in_the_namespace_the_code_uses() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert (variables["POWERTOOLS_METRICS_NAMESPACE"], variables["POWERTOOLS_SERVICE_NAME"]) == (NAMESPACE, SERVICE)


@pytest.mark.parametrize("logical_id", sorted(REQUIRED_ALARMS))
def test_every_alarm_the_issue_names_exists_watches_its_metric_and_tells_the_ops_topic(logical_id: str) -> None:
    alarm = ALARMS[logical_id]
    namespace, name = REQUIRED_ALARMS[logical_id]
    watched = [alarm.get("MetricName")] + [
        query["MetricStat"]["Metric"]["MetricName"] for query in alarm.get("Metrics", []) if "MetricStat" in query
    ]
    assert name in watched
    assert alarm.get("Namespace", namespace) == namespace
    assert alarm["AlarmActions"] == [{"Ref": TOPIC}]
    assert alarm["OKActions"] == [{"Ref": TOPIC}]
    assert RESOURCES[TOPIC]["Type"] == "AWS::SNS::Topic"
    # thresholds are parameters with defaults, not numbers baked in
    threshold = alarm["Threshold"]
    assert set(threshold) == {"Ref"}
    assert "Default" in PARAMETERS[threshold["Ref"]]


@pytest.mark.parametrize("logical_id", sorted(ALARMS))
def test_every_alarm_reads_metrics_that_exist(logical_id: str) -> None:
    alarm = ALARMS[logical_id]
    if "MetricName" in alarm:
        dimensions = {item["Name"]: reference(item["Value"]) for item in alarm.get("Dimensions", [])}
        check_metric(alarm["Namespace"], alarm["MetricName"], dimensions)
        return
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    for query in queries.values():
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dimensions = {item["Name"]: reference(item["Value"]) for item in metric.get("Dimensions", [])}
            check_metric(metric["Namespace"], metric["MetricName"], dimensions)
        else:
            expression = query["Expression"]
            text = expression["Fn::Sub"] if isinstance(expression, dict) else expression
            used = set(re.findall(r"\b([a-z][A-Za-z0-9_]*)\b", re.sub(r"\$\{[^}]+\}", "", text))) - {"IF"}
            assert used <= set(queries), f"{logical_id}: expression uses unknown ids {used - set(queries)}"
            for parameter in re.findall(r"\$\{([A-Za-z0-9]+)\}", text):
                assert parameter in PARAMETERS


def test_the_email_subscription_is_optional() -> None:
    subscription = RESOURCES["OpsAlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": TOPIC}
    assert PARAMETERS["AlarmEmail"]["Default"] == ""


def dashboard() -> dict[str, Any]:
    """The dashboard's JSON with every ${...} turned into a reference marker (Ref:X, GetAtt:X.Attr)."""
    body = RESOURCES["OpsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text, variables = (body[0], body[1]) if isinstance(body, list) else (body, {})
    assert variables == {}

    def marker(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith("AWS::"):
            return name
        logical_id = name.split(".", 1)[0]
        assert logical_id in RESOURCES, f"the dashboard names {logical_id}, which the template does not have"
        return f"GetAtt:{name}" if "." in name else f"Ref:{name}"

    document: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", marker, text))
    return document


def test_the_dashboard_shows_only_metrics_that_exist_and_expressions_over_its_own_ids() -> None:
    widgets = [widget for widget in dashboard()["widgets"] if widget["type"] == "metric"]
    assert widgets
    for widget in widgets:
        rows = widget["properties"]["metrics"]
        ids = {row[-1]["id"] for row in rows if isinstance(row[-1], dict) and "id" in row[-1]}
        for row in rows:
            options = row[-1] if isinstance(row[-1], dict) else {}
            if "expression" in options:
                used = set(re.findall(r"\b([a-z][A-Za-z0-9_]*)\b", options["expression"]))
                assert used <= ids, f"{widget['properties']['title']}: unknown ids {used - ids}"
                continue
            fields = [item for item in row if not isinstance(item, dict)]
            namespace, name, *pairs = fields
            assert len(pairs) % 2 == 0, row
            check_metric(namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)))


def test_the_dashboard_has_the_widgets_ops_asked_for() -> None:
    titles = " | ".join(widget["properties"].get("title", "") for widget in dashboard()["widgets"])
    for wanted in (
        "Refunds by status per hour",
        "NEEDS_ATTENTION by reason",
        "Approvals",
        "Age of refunds when an approver decided",
        "error rate per platform",
        "latency per platform",
        "Dead-letter queues",
        "Refund workflow executions",
        "4xx and 5xx",
        "Cost drivers per refund",
        "Refunds waiting for approval or attention now",
        "Oldest refund waiting for approval or attention",
    ):
        assert wanted in titles


def test_the_needs_attention_widget_shows_every_reason_and_the_status_widget_every_status() -> None:
    widgets = {widget["properties"].get("title"): widget for widget in dashboard()["widgets"]}

    def shown(title: str, dimension: str) -> set[str]:
        rows = widgets[title]["properties"]["metrics"]
        return {row[row.index(dimension) + 1] for row in rows if dimension in row}

    assert shown("NEEDS_ATTENTION by reason", "reason") == DIMENSION_VALUES["reason"]
    assert shown("Refunds by status per hour", "status") == DIMENSION_VALUES["status"]


def test_every_platform_of_the_catalog_is_on_the_dashboard_and_in_the_provider_alarm() -> None:
    payments = {entry.name for entry in catalog.payment_platforms()}
    books = {entry.name for entry in catalog.books_platforms()}
    rows = [row for widget in dashboard()["widgets"] for row in widget.get("properties", {}).get("metrics", [])]

    def platforms(metric: str) -> set[str]:
        return {row[row.index("platform") + 1] for row in rows if metric in row and "platform" in row}

    for metric in ("ProviderCalls", "ProviderErrors", "ProviderLatency"):
        assert platforms(metric) == payments, metric
    for metric in ("BooksCalls", "BooksErrors", "BooksLatency"):
        assert platforms(metric) == books, metric
    alarm = ALARMS["ProviderErrorRateAlarm"]
    watched = {
        (query["MetricStat"]["Metric"]["MetricName"], dimension["Value"])
        for query in alarm["Metrics"]
        if "MetricStat" in query
        for dimension in query["MetricStat"]["Metric"]["Dimensions"]
        if dimension["Name"] == "platform"
    }
    assert watched == {(metric, name) for metric in ("ProviderErrors", "ProviderCalls") for name in payments}


def test_the_waiting_gauges_are_shown_for_approval_and_attention_and_alarm_past_the_escalation_window() -> None:
    widgets = {widget["properties"].get("title", ""): widget for widget in dashboard()["widgets"]}
    for title, metric in (
        ("Refunds waiting for approval or attention now (count)", "RefundsWaiting"),
        ("Oldest refund waiting for approval or attention (age in seconds)", "OldestWaitingAgeSeconds"),
    ):
        rows = widgets[title]["properties"]["metrics"]
        assert {row[row.index("status") + 1] for row in rows if metric in row} == {
            "PENDING_APPROVAL",
            "NEEDS_ATTENTION",
        }
    alarm = ALARMS["OldestApprovalAlarm"]
    assert alarm["Threshold"] == {"Ref": "ApprovalEscalationSeconds"}
    assert (alarm["Statistic"], alarm["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold")
    assert {item["Name"]: item["Value"] for item in alarm["Dimensions"]} == {
        "service": SERVICE,
        "status": "PENDING_APPROVAL",
    }


def test_the_gauges_are_measured_on_a_parameterised_schedule_with_a_query_on_the_status_index_only() -> None:
    function = RESOURCES["MeasureQueuesFunction"]["Properties"]
    [event] = function["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "QueueGaugeRate"}
    assert re.fullmatch(PARAMETERS["QueueGaugeRate"]["AllowedPattern"], PARAMETERS["QueueGaugeRate"]["Default"])
    [policy] = function["Policies"]
    [statement] = [statement for statement in policy["Statement"] if statement["Effect"] == "Allow"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "dynamodb:Query")
    assert statement["Resource"] == {"Fn::Sub": "${RefundsTable.Arn}/index/by-status"}
