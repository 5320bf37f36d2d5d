"""The deployed stack under test, from the environment; every test here skips, saying what is missing, when
it is not configured (`make test` and CI never configure it: only `make aws-e2e` against a real deployment).

- ``REFUNDFLOW_API_URL``: the stack's ``ApiUrl`` output, or ``REFUNDFLOW_STACK_NAME`` to read it from
  CloudFormation;
- ``REFUNDFLOW_SOURCE_SYSTEM`` and ``REFUNDFLOW_SIGNING_SECRET``: a source system and its refund-request
  signing secret (``whsec_...``), as stored in the stack's refund-requests secret;
- ``REFUNDFLOW_AWS_E2E_PAYMENT_ID``: a captured Stripe **test-mode** PaymentIntent (``pi_...``) with something
  left to refund, in the account the stack's Stripe secret points at; the test refunds all that is left;
- optional ``REFUNDFLOW_AWS_E2E_INVOICE_ID`` (a Xero invoice to credit) and ``REFUNDFLOW_AWS_E2E_TIMEOUT``
  (seconds to wait for a final status, default 600);
- AWS credentials (any boto3 source) allowed ``execute-api:Invoke`` on ``GET /refunds/{refund_id}``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import boto3
import botocore.session
import pytest
from botocore.credentials import ReadOnlyCredentials

# tests/conftest.py puts fake keys in the environment for every other suite; they must not hide the real
# credentials of a profile, SSO or an instance role, which come after the environment in boto3's chain.
FAKE_ACCESS_KEY = "testing"


def real_aws_session() -> boto3.Session:
    core = botocore.session.get_session()
    if os.environ.get("AWS_ACCESS_KEY_ID") == FAKE_ACCESS_KEY:
        core.get_component("credential_provider").remove("env")
    return boto3.Session(botocore_session=core)


@dataclass(frozen=True)
class DeployedStack:
    api_url: str
    region: str
    credentials: ReadOnlyCredentials
    source_system: str
    signing_secret: str
    payment_id: str
    invoice_id: str | None
    timeout_seconds: float


def api_url_of(session: boto3.Session, stack_name: str) -> str:
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    return str(outputs["ApiUrl"])


@pytest.fixture(scope="session")
def deployed() -> DeployedStack:
    environment = os.environ
    session = real_aws_session()
    credentials = session.get_credentials()
    needed = {
        "REFUNDFLOW_API_URL or REFUNDFLOW_STACK_NAME": environment.get("REFUNDFLOW_API_URL")
        or environment.get("REFUNDFLOW_STACK_NAME"),
        "REFUNDFLOW_SOURCE_SYSTEM": environment.get("REFUNDFLOW_SOURCE_SYSTEM"),
        "REFUNDFLOW_SIGNING_SECRET": environment.get("REFUNDFLOW_SIGNING_SECRET"),
        "REFUNDFLOW_AWS_E2E_PAYMENT_ID": environment.get("REFUNDFLOW_AWS_E2E_PAYMENT_ID"),
        "AWS credentials": credentials,
    }
    missing = [name for name, value in needed.items() if not value]
    if missing:
        pytest.skip(f"no deployed stack configured (missing {', '.join(missing)}): see tests/aws/conftest.py")
    assert credentials is not None
    api_url = environment.get("REFUNDFLOW_API_URL") or api_url_of(session, environment["REFUNDFLOW_STACK_NAME"])
    # https://<api id>.execute-api.<region>.amazonaws.com: SigV4 signs for the API's own region
    host_region = re.search(r"\.execute-api\.([a-z0-9-]+)\.", api_url)
    region = host_region.group(1) if host_region else session.region_name
    assert region, "no AWS region: set AWS_REGION or use the stack's execute-api URL"
    return DeployedStack(
        api_url=api_url.rstrip("/"),
        region=region,
        credentials=credentials.get_frozen_credentials(),
        source_system=environment["REFUNDFLOW_SOURCE_SYSTEM"],
        signing_secret=environment["REFUNDFLOW_SIGNING_SECRET"],
        payment_id=environment["REFUNDFLOW_AWS_E2E_PAYMENT_ID"],
        invoice_id=environment.get("REFUNDFLOW_AWS_E2E_INVOICE_ID"),
        timeout_seconds=float(environment.get("REFUNDFLOW_AWS_E2E_TIMEOUT", "600")),
    )
