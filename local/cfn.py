"""Reads template.yaml the way CloudFormation would, for the local stack and the tests: short-form
intrinsic tags, parameters with defaults and overrides, and the few intrinsics the template uses
(Ref, Fn::GetAtt, Fn::Sub). Tables, queues, rules, secrets, templates, functions and state machines
are all built from it, so the local stack and the deployed one cannot drift."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": "x"}`` and ``!Sub s`` into ``{"Fn::Sub": s}``."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)
    return document


@dataclass
class Stack:
    """A template with parameter values and the physical names the local stack gives its resources."""

    name: str
    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = REGION
    account_id: str = ACCOUNT_ID

    @classmethod
    def from_template(cls, name: str, overrides: Mapping[str, str] | None = None, path: Path = TEMPLATE) -> Stack:
        template = load_template(path)
        parameters = {key: str(spec.get("Default", "")) for key, spec in template.get("Parameters", {}).items()}
        unknown = set(overrides or {}) - set(parameters)
        if unknown:
            raise KeyError(f"unknown template parameters {sorted(unknown)}")
        parameters.update(overrides or {})
        return cls(name=name, template=template, parameters=parameters)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {key: value for key, value in self.resources.items() if value["Type"] == resource_type}

    # ------------------------------------------------------------------ physical names and ARNs

    def physical_name(self, logical_id: str) -> str:
        """The name the local stack gives a resource: its explicit name property, else stack-logicalId."""
        resource = self.resources[logical_id]
        properties = resource.get("Properties", {})
        for key in ("Name", "TableName", "QueueName", "FunctionName", "LayerName", "LogGroupName"):
            if key in properties:
                return str(self.resolve(properties[key]))
        if resource["Type"] == "AWS::SES::Template":
            return str(self.resolve(properties["Template"]["TemplateName"]))
        if resource["Type"] == "AWS::S3::Bucket":
            return f"{self.name}-{logical_id}".lower()  # S3 bucket names are lower case
        return f"{self.name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        prefix = f"arn:aws:{{service}}:{self.region}:{self.account_id}"
        arns = {
            "AWS::Serverless::Function": prefix.format(service="lambda") + f":function:{name}",
            "AWS::DynamoDB::Table": prefix.format(service="dynamodb") + f":table/{name}",
            "AWS::SQS::Queue": prefix.format(service="sqs") + f":{name}",
            "AWS::Events::EventBus": prefix.format(service="events") + f":event-bus/{name}",
            "AWS::Events::Rule": prefix.format(service="events")
            + f":rule/{self.physical_name_of_bus(logical_id)}/{name}",
            "AWS::Serverless::StateMachine": prefix.format(service="states") + f":stateMachine:{name}",
            "AWS::Logs::LogGroup": prefix.format(service="logs") + f":log-group:{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
        }
        if kind not in arns:
            raise KeyError(f"no local ARN for {logical_id} ({kind})")
        return arns[kind]

    def physical_name_of_bus(self, rule_id: str) -> str:
        bus = self.resources[rule_id]["Properties"].get("EventBusName", "default")
        return str(self.resolve(bus))

    def queue_url(self, logical_id: str, endpoint: str) -> str:
        return f"{endpoint}/{self.account_id}/{self.physical_name(logical_id)}"

    # ------------------------------------------------------------------ intrinsics

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self.resources[name]["Type"]
        if kind in {"AWS::Serverless::StateMachine"}:
            return self.arn(name)
        if kind == "AWS::SQS::Queue":
            return f"queue:{self.physical_name(name)}"
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in {"Name", "QueueName"}:
            return self.physical_name(logical_id)
        raise KeyError(f"unsupported attribute {logical_id}.{attribute}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            logical_id, attribute = target if isinstance(target, list) else target.split(".", 1)
            return self.get_att(logical_id, attribute)
        if set(value) == {"Fn::Sub"}:
            return self._sub(value["Fn::Sub"])
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, template: str) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(expression)

        return re.sub(r"\$\{([^}!]+)\}", replace, template)

    # ------------------------------------------------------------------ functions

    def function_environment(self, logical_id: str) -> dict[str, str]:
        globals_env = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.resources[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        return {key: str(self.resolve(value)) for key, value in {**globals_env, **own}.items()}

    def queue_event_sources(self) -> list[tuple[str, str, int]]:
        """(function logical id, queue ARN, batch size) of every SQS event source: the template's
        ``AWS::Lambda::EventSourceMapping`` resources and any SAM ``SQS`` event of a function."""
        sources: list[tuple[str, str, int]] = []
        for mapping in self.of_type("AWS::Lambda::EventSourceMapping").values():
            properties = mapping["Properties"]
            target = properties["FunctionName"]
            logical_id = target["Ref"] if isinstance(target, dict) and "Ref" in target else str(target)
            queue_arn = str(self.resolve(properties["EventSourceArn"]))
            if queue_arn.startswith(f"arn:aws:sqs:{self.region}:"):
                sources.append((logical_id, queue_arn, int(properties.get("BatchSize", 10))))
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] == "SQS":
                    queue_arn = str(self.resolve(event["Properties"]["Queue"]))
                    sources.append((logical_id, queue_arn, int(event["Properties"].get("BatchSize", 10))))
        return sources

    def function_folder(self, logical_id: str) -> Path:
        return ROOT / str(self.resources[logical_id]["Properties"]["CodeUri"])

    def definition(self, logical_id: str) -> str:
        """A state machine's ASL with its DefinitionSubstitutions applied (moto does not apply them)."""
        properties = self.resources[logical_id]["Properties"]
        text: str = (ROOT / properties["DefinitionUri"]).read_text()
        for key, value in properties.get("DefinitionSubstitutions", {}).items():
            text = text.replace("${" + key + "}", str(self.resolve(value)))
        leftover = re.findall(r"\$\{([A-Za-z0-9]+)\}", text)
        if leftover:
            raise KeyError(f"{logical_id}: no substitution for {sorted(set(leftover))}")
        return text
