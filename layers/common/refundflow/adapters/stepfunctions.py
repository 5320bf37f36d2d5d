"""Step Functions: starting a refund's workflow and resuming a waiting one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from refundflow.adapters.aws import client as aws_client
from refundflow.adapters.workflow_start import start_workflow
from refundflow.errors import TransientError
from refundflow.ports import TaskCallbacks, WorkflowStarter

_GONE = {"InvalidToken", "TaskDoesNotExist", "TaskTimedOut"}


class _StepFunctions:
    def __init__(self, sfn: Any | None = None) -> None:
        self._sfn = sfn

    @property
    def sfn(self) -> Any:
        if self._sfn is None:
            self._sfn = aws_client("stepfunctions")
        return self._sfn


class StepFunctionsWorkflow(_StepFunctions, WorkflowStarter):
    def __init__(self, state_machine_arn: str, sfn: Any | None = None) -> None:
        super().__init__(sfn)
        self.state_machine_arn = state_machine_arn

    def start(self, refund_id: str, payload: Mapping[str, Any]) -> str:
        return start_workflow(self.sfn, self.state_machine_arn, refund_id, payload)


class StepFunctionsCallbacks(_StepFunctions, TaskCallbacks):
    def succeed(self, task_token: str, output: Mapping[str, Any]) -> bool:
        return self._send("send_task_success", taskToken=task_token, output=json.dumps(dict(output)))

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        return self._send("send_task_failure", taskToken=task_token, error=error[:256], cause=cause[:32768])

    def _send(self, operation: str, **kwargs: Any) -> bool:
        try:
            getattr(self.sfn, operation)(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _GONE:
                return False
            raise TransientError(f"{operation} failed: {error}", code="workflow_unavailable") from error
        except BotoCoreError as error:
            raise TransientError(f"{operation} failed: {error}", code="workflow_unavailable") from error
        return True
