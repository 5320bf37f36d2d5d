"""The merchant's own system, receiving refundflow's refund messages (the merchant webhook): a sandbox receiver as
a merchant would write it with the Standard Webhooks reference library (``standardwebhooks``, never refundflow's
own signing code).

Mounted by the local stack at ``/_sandbox/merchant``; refundflow's ``MerchantWebhookUrl`` points at
``{sandbox}/merchant/webhooks/refunds``. What it holds to (standardwebhooks.com, the specification's "Verifying
webhooks" and "Idempotency"):

- ``POST /webhooks/refunds``: ``webhook-id``, ``webhook-timestamp`` (within 5 minutes either way) and
  ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``) verified on the raw body with the
  merchant's secret; a missing header, a stale timestamp or a wrong signature is a 401 ``{"error": ...}`` and
  nothing is kept; a body that is not a JSON object with ``type`` and ``data`` is a 400;
- a ``webhook-id`` seen before is answered 200 and not kept again (the sender's retries carry the same id);
- anything else is 204, and the message is kept: what "the merchant's system told the customer" means here.

Control routes, besides the base ones: ``GET /_control/messages`` (``?refund_id=``): the messages kept, oldest
first, each ``{"webhook_id", "type", "data", "attempts"}`` (attempts: every verified delivery of that id);
``GET /_control/refused``: the deliveries refused (status, reason). Faults (``FAULT_OPERATIONS["receive"]``): a
503 or a 429 with ``Retry-After`` before anything is kept, as a merchant's endpoint under load answers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request, Response

from local.simulators.base import Simulator, json_response

LOCAL_SIGNING_SECRET = "whsec_" + base64.b64encode(b"refundflow-local-merchant-webhook").decode()


class MerchantWebhookReceiver(Simulator):
    """The merchant's endpoint for refund messages."""

    name = "merchant"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {"receive": ("POST", r"^/webhooks/refunds$")}
    TRANSIENT_STATUS: ClassVar[int] = 503

    def __init__(self, signing_secret: str = LOCAL_SIGNING_SECRET) -> None:
        super().__init__()
        self.signing_secret = signing_secret
        self.messages: dict[str, dict[str, Any]] = {}
        self.refused: list[dict[str, Any]] = []
        self.route("/webhooks/refunds", self._receive, methods=["POST"])
        self.route("/_control/messages", self._control_messages, methods=["GET"])
        self.route("/_control/refused", self._control_refused, methods=["GET"])
        _ = self.url_map

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """refundflow's side of the secret (``<SecretsPrefix>merchant-webhook``)."""
        return {"api": {"signing_secret": self.signing_secret}}

    def reset_state(self) -> None:
        with self.lock:
            self.messages.clear()
            self.refused.clear()

    def messages_about(self, refund_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                json.loads(json.dumps(message))
                for message in self.messages.values()
                if refund_id is None or message["data"].get("refund_id") == refund_id
            ]

    def _receive(self, request: Request) -> Response:
        raw = request.get_data()
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            Webhook(self.signing_secret).verify(raw, headers, json_parse=False)
        except (WebhookVerificationError, ValueError) as error:
            return self._refuse(401, str(error) or "signature not verified")
        try:
            document = json.loads(raw)
        except ValueError:
            return self._refuse(400, "the body is not JSON")
        if not isinstance(document, dict) or not isinstance(document.get("type"), str) or "data" not in document:
            return self._refuse(400, "a message needs type and data")
        webhook_id = headers["webhook-id"]
        with self.lock:
            known = self.messages.get(webhook_id)
            if known is not None:
                known["attempts"] += 1
                return Response(status=200)
            self.messages[webhook_id] = {
                "webhook_id": webhook_id,
                "type": document["type"],
                "data": document["data"],
                "attempts": 1,
            }
        return Response(status=204)

    def _refuse(self, status: int, reason: str) -> Response:
        with self.lock:
            self.refused.append({"status": status, "reason": reason})
        return json_response({"error": reason}, status)

    def _control_messages(self, request: Request) -> Response:
        return json_response(self.messages_about(request.args.get("refund_id")))

    def _control_refused(self, request: Request) -> Response:
        with self.lock:
            return json_response(list(self.refused))
