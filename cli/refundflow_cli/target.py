"""Where the CLI works: the local dev stack (default) or a deployed stack (``--stack`` / REFUNDFLOW_STACK_NAME).

Both are described the same way, as CloudFormation describes a deployed stack: its outputs (API URL,
table, state machines, bus, archive, queues) and parameters (secret names). The local stack serves
them at ``GET /_local/outputs`` with the address of its AWS endpoint (moto); a deployed stack's come
from ``DescribeStacks``. AWS calls go to moto with dummy credentials locally, to AWS with boto3's
usual credential chain otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
import botocore.exceptions
import requests
from botocore.config import Config

from refundflow_cli.errors import CliError, Exit

DEFAULT_LOCAL_PORT = "3000"
LOCAL_SOURCE = "curl"  # the local stack's source system for hand-made requests (README: The local stack)


@dataclass
class Settings:
    """What the global options and the environment say."""

    api_url: str | None = None
    stack_name: str | None = None
    region: str | None = None
    profile: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_environment(cls, **given: Any) -> Settings:
        values = {key: value for key, value in given.items() if value is not None}
        values.setdefault("region", os.environ.get("AWS_DEFAULT_REGION"))
        return cls(**values)

    @property
    def local(self) -> bool:
        return not self.stack_name


@dataclass
class Target:
    settings: Settings
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.settings.local

    @property
    def name(self) -> str:
        return "local stack" if self.local else f"stack {self.settings.stack_name}"

    # ------------------------------------------------------------------ the stack's description

    @cached_property
    def description(self) -> dict[str, Any]:
        if self.local:
            return self._local_description()
        return self._deployed_description()

    def _local_description(self) -> dict[str, Any]:
        url = f"{self.local_api_url}/_local/outputs"
        try:
            response = requests.get(url, timeout=self.settings.timeout)
        except requests.RequestException as error:
            raise CliError(
                "local_stack_unreachable",
                f"no local stack at {self.local_api_url} ({type(error).__name__}): start it with `make local`, "
                "or give --api-url / --stack",
                Exit.UNAVAILABLE,
            ) from error
        if response.status_code != 200:
            raise CliError(
                "not_a_local_stack",
                f"{url} answered HTTP {response.status_code}: not a refundflow local stack (for a deployed one give "
                "--stack)",
                Exit.CONFIG,
            )
        document: dict[str, Any] = response.json()
        return document

    def _deployed_description(self) -> dict[str, Any]:
        cloudformation = self._session().client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=self.settings.stack_name)["Stacks"]
        except botocore.exceptions.ClientError as error:
            raise aws_error(error, f"stack {self.settings.stack_name}") from error
        except botocore.exceptions.BotoCoreError as error:
            raise CliError("aws_unreachable", f"CloudFormation: {error}", Exit.UNAVAILABLE) from error
        stack = stacks[0]
        return {
            "StackName": stack["StackName"],
            "Region": cloudformation.meta.region_name,
            "AwsEndpointUrl": None,
            "Outputs": {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])},
            "Parameters": {
                item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])
            },
        }

    def stack_resources(self) -> list[dict[str, str]]:
        """The stack's resources as CloudFormation's ListStackResources gives them (``LogicalResourceId``,
        ``ResourceType``, ``PhysicalResourceId``: a queue's URL, a rule's ``bus|name`` or name); the local stack
        serves the same list with its outputs."""
        if self.local:
            resources: list[dict[str, str]] | None = self.description.get("Resources")
            if resources is None:
                raise CliError(
                    "missing_resources", f"{self.name} does not list its resources (an older local stack?)", Exit.CONFIG
                )
            return resources
        cloudformation = self._session().client("cloudformation", region_name=self.region)
        found: list[dict[str, str]] = []
        try:
            for page in cloudformation.get_paginator("list_stack_resources").paginate(
                StackName=self.settings.stack_name
            ):
                found.extend(
                    {key: str(item.get(key, "")) for key in ("LogicalResourceId", "ResourceType", "PhysicalResourceId")}
                    for item in page.get("StackResourceSummaries", [])
                )
        except botocore.exceptions.ClientError as error:
            raise aws_error(error, f"stack {self.settings.stack_name}") from error
        return found

    @property
    def local_api_url(self) -> str:
        given = self.settings.api_url
        if given:
            return given.rstrip("/")
        return f"http://127.0.0.1:{os.environ.get('REFUNDFLOW_PORT', DEFAULT_LOCAL_PORT)}"

    @property
    def api_url(self) -> str:
        if self.local or self.settings.api_url:
            return self.local_api_url
        return self.output("ApiUrl").rstrip("/")

    def output(self, key: str) -> str:
        outputs: dict[str, str] = self.description.get("Outputs", {})
        if key not in outputs:
            raise CliError(
                "missing_output", f"{self.name} has no output {key} (deployed from an older template?)", Exit.CONFIG
            )
        return outputs[key]

    def parameter(self, key: str) -> str:
        parameters: dict[str, str] = self.description.get("Parameters", {})
        if key not in parameters:
            raise CliError("missing_parameter", f"{self.name} has no parameter {key}", Exit.CONFIG)
        return parameters[key]

    @property
    def region(self) -> str:
        return str(self.description.get("Region") or self.settings.region or "us-east-1")

    # ------------------------------------------------------------------ AWS

    def _session(self) -> boto3.session.Session:
        return boto3.session.Session(profile_name=self.settings.profile, region_name=self.settings.region)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)
            if self.local:
                self._clients[service] = boto3.session.Session().client(  # type: ignore[call-overload]
                    service,
                    endpoint_url=self.description["AwsEndpointUrl"],
                    region_name=self.region,
                    aws_access_key_id="local",
                    aws_secret_access_key="local",
                    config=config,
                )
            else:
                self._clients[service] = self._session().client(  # type: ignore[call-overload]
                    service, region_name=self.region, config=config
                )
        return self._clients[service]

    def credentials(self) -> Any:
        """Credentials for SigV4 on the API: dummy ones locally (the local API does not check them)."""
        if self.local:
            from botocore.credentials import Credentials

            return Credentials("local", "local")
        credentials = self._session().get_credentials()
        if credentials is None:
            raise CliError(
                "no_aws_credentials", "no AWS credentials for SigV4 (aws configure, AWS_PROFILE)", Exit.CONFIG
            )
        return credentials.get_frozen_credentials()

    def secret_document(self, secret_name: str) -> dict[str, Any]:
        try:
            value = self.client("secretsmanager").get_secret_value(SecretId=secret_name)["SecretString"]
        except botocore.exceptions.ClientError as error:
            raise aws_error(error, f"secret {secret_name}") from error
        document: dict[str, Any] = json.loads(value)
        return document


def aws_error(error: botocore.exceptions.ClientError, what: str) -> CliError:
    """One line from an AWS error: its code, and the exit code its kind calls for."""
    code = str(error.response.get("Error", {}).get("Code", "aws_error"))
    message = str(error.response.get("Error", {}).get("Message", error))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
    if (
        "NotFound" in code
        or "DoesNotExist" in code
        or "NonExistent" in code
        or (code == "ValidationError" and "does not exist" in message)
    ):
        exit_code = Exit.NOT_FOUND
    elif status >= 500:
        exit_code = Exit.UNAVAILABLE
    else:
        exit_code = Exit.REFUSED
    return CliError(code, f"{what}: {message}", exit_code)
