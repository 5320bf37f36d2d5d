"""HubSpot workflow webhooks, verified by intake with the app's client secret only.

What HubSpot documents (developers.hubspot.com, "Validating requests" / "request validation", and the changelog
"Introducing version 3 of Webhook signatures"; the official SDK hubspot-api-python ``hubspot/utils/signature.py``
computes the same): ``X-HubSpot-Signature-v3`` is ``base64(HMAC-SHA256(client secret, utf8(method + URI + body +
timestamp)))``, the timestamp being ``X-HubSpot-Request-Timestamp`` exactly as sent (Unix milliseconds); a request
whose timestamp is older than 5 minutes is to be rejected. The URI is the full URL the request was sent to (scheme,
host, path, query), with the URL-encoded characters HubSpot lists decoded (``%3A`` ``%2F`` ``%3F`` ``%40`` ``%21``
``%24`` ``%27`` ``%28`` ``%29`` ``%2A`` ``%2C`` ``%3B``; the list as the page gives it, not in the excerpts the
search tool returned: unverified). The SDK leaves the URI to its caller and checks the age one way only; we take 5
minutes both ways (DESIGN: tolerance both ways where a time is signed).

Intake does not know the URL it was called on behind API Gateway and a custom domain, so, as for Square's
notification URL, the verification secret names it: ``{"client_secrets": [...], "webhook_urls": [...]}``
(``<SecretsPrefix>webhooks/hubspot``): the HubSpot app's client secret (two while it is rotated) and the webhook
URL exactly as entered in the workflow action (``<WebhooksBaseUrl>/hubspot``). The method is always POST.

The workflow action ("Send a webhook", knowledge.hubspot.com "Use webhooks with HubSpot workflows") sends the
ticket's properties the admin picks; the setup (README, Help desks) picks ``hs_object_id`` (Record ID), which names
the ticket, ``hs_pipeline_stage`` and ``hs_lastmodifieddate``. HubSpot documents no delivery id for workflow
webhooks and retries a failed call for up to three days (no retry after a 4xx other than 429): the event id is the
ticket id and a digest of the body, the same for every retry of one enrolment, and another for the next enrolment of
the ticket (its ``hs_lastmodifieddate`` moved). Everything else is read from the ticket through the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "hubspot"
SIGNATURE = "x-hubspot-signature-v3"
TIMESTAMP = "x-hubspot-request-timestamp"
METHOD = "POST"
TOLERANCE = timedelta(minutes=5)
TICKET_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: the id goes into the API's paths
MILLISECONDS = re.compile(r"[0-9]{1,16}")
# The percent-encodings HubSpot decodes in the URI before signing (request validation page, v3).
DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ENCODED = re.compile("|".join(DECODED), re.IGNORECASE)


def signed_uri(url: str) -> str:
    """The URI as HubSpot signs it: the listed percent-encodings decoded (``%3a`` as ``%3A``)."""
    return _ENCODED.sub(lambda match: DECODED[match.group(0).upper()], url)


def sign(client_secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3`` for ``body`` sent with ``method`` to ``url`` at ``timestamp`` (milliseconds)."""
    source = method.encode() + signed_uri(url).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(client_secret.encode(), source, hashlib.sha256).digest()).decode()


def _strings(secret: Mapping[str, Any], key: str) -> list[str]:
    values = secret.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(value, str) and value for value in values):
        raise ConfigurationError(f"the HubSpot verification secret needs {key}: [text, ...]", platform=PLATFORM)
    return list(values)


class HubSpotInbound(InboundPlatform):
    """Verifies the v3 signature of a workflow webhook and names the ticket it is about."""

    name: ClassVar[str] = PLATFORM

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Raises:
        ConfigurationError: a verification secret of another shape.
        AuthenticationFailed: no signature, a stale or unreadable timestamp, or a signature no client secret and
            webhook URL of the secret makes.
        InvalidRequest: a verified body that is not JSON naming one ticket (``hs_object_id`` or ``objectId``).
        """
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        signature, timestamp = lowered.get(SIGNATURE, ""), lowered.get(TIMESTAMP, "")
        if not signature or not timestamp:
            raise AuthenticationFailed("the HubSpot v3 signature headers are missing", code="signature_missing")
        if not MILLISECONDS.fullmatch(timestamp):
            raise AuthenticationFailed("the request timestamp is not Unix milliseconds", code="signature_invalid")
        sent = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
        if abs(self._now() - sent) > TOLERANCE:
            raise AuthenticationFailed("the request timestamp is outside 5 minutes", code="signature_stale")
        client_secrets = _strings(secret, "client_secrets")
        urls = _strings(secret, "webhook_urls")
        expected = signature.encode()
        if not any(
            hmac.compare_digest(sign(key, METHOD, url, raw_body, timestamp).encode(), expected)
            for key in client_secrets
            for url in urls
        ):
            raise AuthenticationFailed("the HubSpot signature does not match", code="signature_invalid")
        try:
            body = json.loads(raw_body)
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidRequest("the HubSpot delivery is not JSON", code="invalid_json", platform=PLATFORM) from error
        if not isinstance(body, dict):
            raise InvalidRequest("the HubSpot delivery is not a JSON object", code="invalid_json", platform=PLATFORM)
        ticket_id = _ticket_id(body)
        digest = hashlib.sha256(raw_body).hexdigest()[:32]
        news = TicketNews(
            platform=PLATFORM,
            event_id=f"{ticket_id}:{digest}",
            ticket_id=ticket_id,
            occurred_at=sent,
            payload=body,
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))


def _ticket_id(body: Mapping[str, Any]) -> str:
    """The ticket's record id: ``hs_object_id`` (the property the setup picks) or ``objectId``.

    Raises:
        InvalidRequest: neither is a plain ticket id, or they name two tickets.
    """
    named = {str(body[key]) for key in ("hs_object_id", "objectId") if body.get(key) not in (None, "")}
    if len(named) != 1 or not TICKET_ID.fullmatch(ticket_id := named.pop()):
        raise InvalidRequest(
            "the delivery must name one ticket: hs_object_id (the workflow's Record ID property)",
            code="invalid_ticket_id",
            platform=PLATFORM,
        )
    return ticket_id


def inbound() -> HubSpotInbound:
    return HubSpotInbound()
