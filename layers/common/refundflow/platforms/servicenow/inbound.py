"""ServiceNow outbound REST messages, verified by intake with a shared secret only.

What ServiceNow documents (KB0694711; servicenow.com/docs "Outbound REST mutual authentication"; the REST Message
form, System Web Services > Outbound > REST Message: an authentication type, Basic or an OAuth 2.0 profile, optional
mutual authentication, and HTTP headers the message sets; a flow's REST step or a business rule's
``sn_ws.RESTMessageV2`` sends a body the admin writes). ServiceNow signs nothing: no HMAC, no
timestamp, no delivery id (an HMAC computed in script is possible, but no documented API for it was found). So:

- the REST message sets the header ``X-Refundflow-Secret: <secret>``, or authenticates with HTTP Basic as
  ``servicenow:<secret>`` (the user name is configurable); the value is compared in constant time with each
  configured secret (``{"shared_secrets": [...]}``: two during a rotation), all of them whatever matched;
- nothing in the body is believed: it must name the record by its ``sys_id`` (32 lowercase hex characters, the
  shape every ServiceNow record id has), and the record's own function reads the record with the Table API before
  anything moves; ``table``, when sent, must be a table name (the function reads the table it is configured for);
- no timestamp exists, so nothing is stale here: a replayed delivery can only make us read the record again;
- no delivery id exists, so one is derived that a retry of the same message keeps: the sys_id and the body's
  ``sys_mod_count`` (the record's update counter, one more on every update) when the message sends it, else the
  sys_id and the SHA-256 of the body (``sys_updated_on`` has one-second resolution: two updates in a second would
  share it, so it only dates the news).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from refundflow.connectors.help_desk_inbound import json_object
from refundflow.connectors.shared_secrets import one_of
from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "servicenow"
SECRET_HEADER = "x-refundflow-secret"
DEFAULT_BASIC_USER = "servicenow"
SYS_ID = re.compile(r"[0-9a-f]{32}")
TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,79}")
MOD_COUNT = re.compile(r"[0-9]{1,10}")
UPDATED_ON = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


class ServiceNowInbound(InboundPlatform):
    name = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        secrets = secret.get("shared_secrets")
        if not isinstance(secrets, list) or not secrets:
            raise AuthenticationFailed("no ServiceNow shared secret is configured", code="signature_invalid")
        sent = _sent_secret(lowered, str(secret.get("basic_user") or DEFAULT_BASIC_USER))
        if not one_of(sent, secrets):
            raise AuthenticationFailed("the REST message's secret does not match", code="signature_invalid")
        body = json_object(raw_body, what="the ServiceNow delivery")
        sys_id = body.get("sys_id")
        if not isinstance(sys_id, str) or not SYS_ID.fullmatch(sys_id):
            raise InvalidRequest("the delivery must name the record: sys_id (32 hex characters, current.sys_id)")
        table = body.get("table")
        if table is not None and not (isinstance(table, str) and TABLE_NAME.fullmatch(table)):
            raise InvalidRequest("the delivery's table must be a table name (current.getTableName())")
        mod_count = body.get("sys_mod_count")
        if isinstance(mod_count, int | str) and not isinstance(mod_count, bool) and MOD_COUNT.fullmatch(str(mod_count)):
            event_id = f"{sys_id}:{mod_count}"
        else:
            event_id = f"{sys_id}:{hashlib.sha256(raw_body).hexdigest()[:32]}"
        updated_on = body.get("sys_updated_on")
        occurred_at: datetime | None = None
        if isinstance(updated_on, str) and UPDATED_ON.fullmatch(updated_on):
            try:
                occurred_at = datetime.strptime(updated_on, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                occurred_at = None
        news = TicketNews(
            platform=PLATFORM, event_id=event_id, ticket_id=sys_id, occurred_at=occurred_at, payload=dict(body)
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))


def _sent_secret(headers: Mapping[str, str], basic_user: str) -> str:
    """The secret the REST message sent: its custom header, else the password of HTTP Basic for ``basic_user``.

    Raises:
        AuthenticationFailed: neither was sent (``signature_missing``) or Basic names another user.
    """
    header = headers.get(SECRET_HEADER, "")
    if header:
        return header
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not credential.strip():
        raise AuthenticationFailed(
            "neither X-Refundflow-Secret nor HTTP Basic credentials were sent", code="signature_missing"
        )
    try:
        user, _, password = base64.b64decode(credential.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise AuthenticationFailed("unreadable HTTP Basic credentials", code="signature_invalid") from error
    if not hmac.compare_digest(user.encode(), basic_user.encode()):
        raise AuthenticationFailed("the REST message's secret does not match", code="signature_invalid")
    return password


def inbound() -> ServiceNowInbound:
    return ServiceNowInbound()
