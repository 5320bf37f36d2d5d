"""Starting a refund's workflow, named after the refund (the standard library and botocore only: the request intake
starts with it, README, Cost per refund, "Cold import"; refundflow.adapters.stepfunctions for everything else)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from refundflow.errors import TransientError


def start_workflow(sfn: Any, state_machine_arn: str, refund_id: str, payload: Mapping[str, Any]) -> str:
    """Start the execution ``refund_id`` of the state machine; one already started under that name is the same
    start (Step Functions keeps names unique for 90 days): its ARN is answered, nothing starts twice.

    Raises:
        TransientError: Step Functions could not be reached or refused the start (``workflow_unavailable``).
    """
    execution_arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{refund_id}"
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=refund_id, input=json.dumps(dict(payload))
        )
        return str(response["executionArn"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            return execution_arn
        raise TransientError(f"could not start the workflow: {error}", code="workflow_unavailable") from error
    except BotoCoreError as error:
        raise TransientError(f"could not start the workflow: {error}", code="workflow_unavailable") from error
