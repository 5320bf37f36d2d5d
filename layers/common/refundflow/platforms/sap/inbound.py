"""SAP S/4HANA business events for customer returns, verified by intake with the webhook's Basic credentials only.

S/4HANA raises business events for the Customer Return business object when a return is created, changed or deleted,
and (since the release SAP's course "Using Customer Return CMR DMR" describes,
https://learning.sap.com/courses/sap-s-4hana-cloud-private-edition-sales/using-customer-return-cmr-dmr) for its items
(``ItemCreated``, ``ItemChanged``, ``ItemDeleted``). Their types follow SAP's naming for S/4HANA business events
(``sap.s4.beh.<object>.v1.<Object>.<Event>.v1``, e.g. ``sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1``):
``sap.s4.beh.customerreturn.v1.CustomerReturn.Changed.v1`` and its siblings. The exact spelling of the customer return
namespace could not be read on SAP Business Accelerator Hub (one third-party project writes ``customerReturn``), so the
namespace is matched without regard to case. They come as CloudEvents 1.0 JSON (``specversion``, ``id``, ``type``,
``source``, ``time``, ``data`` with the key of the object, ``CustomerReturn``, and, as SAP's sales events do, a few
header fields that we do not use), published to SAP Event Mesh through
the communication arrangement SAP_COM_0092 (Enterprise Event Enablement); an Event Mesh *webhook subscription* on the
queue pushes each message to our URL (``POST /webhooks/sap``) and retries until it is answered 2xx.

The subscription's target authentication: Basic (a user and password the subscription sends in ``Authorization``) or
OAuth 2.0 client credentials (Event Mesh fetches a token from a token URL we would have to host). We take Basic: the
credentials are compared in constant time against each password of the verification secret (several while rotating:
put the new one in the secret, then in the subscription, then drop the old one).

The body is only news: it names the customer return; SAP's books function reads the return from
API_CUSTOMER_RETURN_SRV before anything is recorded. Events of other types (a queue subscribed to more topics) are
acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, ReturnNews

PLATFORM = "sap"
CUSTOMER_RETURN_EVENTS = "sap.s4.beh.customerreturn.v1.CustomerReturn."
RETURN_NUMBER = re.compile(r"[0-9A-Za-z]{1,10}")
EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` header Event Mesh sends for a Basic target (the simulator sends it too)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class SapInbound(InboundPlatform):
    name = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        _check_basic(lowered.get("authorization", ""), secret)
        try:
            body = json.loads(raw_body)
        except ValueError as error:
            raise InvalidRequest("the SAP event is not JSON", code="invalid_json") from error
        if not isinstance(body, dict) or body.get("specversion") != "1.0":
            raise InvalidRequest("the SAP event is not a CloudEvents 1.0 JSON event (specversion 1.0)")
        event_type, event_id = body.get("type"), body.get("id")
        if not isinstance(event_type, str) or not event_type or not isinstance(event_id, str):
            raise InvalidRequest("the SAP event needs its CloudEvents type and id")
        if not EVENT_ID.fullmatch(event_id):
            raise InvalidRequest("the SAP event's id is not an event id", code="invalid_event_id")
        if not event_type.lower().startswith(CUSTOMER_RETURN_EVENTS.lower()):
            return InboundDelivery(answer=InboundAnswer(body='{"received": true}'))
        data = body.get("data")
        number = data.get("CustomerReturn") if isinstance(data, dict) else None
        if not isinstance(number, str) or not RETURN_NUMBER.fullmatch(number):
            raise InvalidRequest("a customer return event must name its CustomerReturn in data")
        news = ReturnNews(
            platform=PLATFORM,
            event_id=event_id,
            return_id=number,
            event_type=event_type,
            occurred_at=_time(body.get("time")),
        )
        return InboundDelivery(returns=[news], answer=InboundAnswer(body='{"received": true}'))


def _check_basic(header: str, secret: Mapping[str, Any]) -> None:
    username, passwords = secret.get("username"), secret.get("passwords")
    if not isinstance(username, str) or not username or not isinstance(passwords, list) or not passwords:
        raise AuthenticationFailed("no SAP webhook credentials are configured", code="signature_invalid")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthenticationFailed("the SAP event carries no Basic credentials", code="signature_missing")
    try:
        user, colon, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise AuthenticationFailed("the Basic credentials are malformed", code="signature_invalid") from error
    # Every comparison runs, whichever matches: the time taken says nothing about which part was wrong.
    user_ok = hmac.compare_digest(user.encode(), username.encode())
    password_ok = False
    for candidate in passwords:
        password_ok |= hmac.compare_digest(password.encode(), str(candidate).encode())
    if not colon or not (user_ok and password_ok):
        raise AuthenticationFailed("the SAP webhook credentials do not match", code="signature_invalid")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def inbound() -> SapInbound:
    return SapInbound()
