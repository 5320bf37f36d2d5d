"""Templated e-mail through Amazon SES."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from refundflow.adapters.aws import client as aws_client
from refundflow.errors import TransientError
from refundflow.ports import Mailer


class SesMailer(Mailer):
    def __init__(
        self, sender: str, *, template_prefix: str, configuration_set: str | None = None, ses: Any | None = None
    ) -> None:
        self.sender = sender
        self.template_prefix = template_prefix
        self.configuration_set = configuration_set
        self._ses = ses

    @property
    def ses(self) -> Any:
        if self._ses is None:
            self._ses = aws_client("ses")
        return self._ses

    def send(self, *, to: str, template: str, data: Mapping[str, Any], idempotency_key: str) -> str:
        kwargs: dict[str, Any] = {
            "Source": self.sender,
            "Destination": {"ToAddresses": [to]},
            "Template": f"{self.template_prefix}-{template}",
            "TemplateData": json.dumps(dict(data)),
            "Tags": [{"Name": "refundflow-key", "Value": idempotency_key.replace("#", "-").replace(":", "-")[:256]}],
        }
        if self.configuration_set:
            kwargs["ConfigurationSetName"] = self.configuration_set
        try:
            response = self.ses.send_templated_email(**kwargs)
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"SES did not accept the message: {error}", code="mail_unavailable") from error
        return str(response["MessageId"])
