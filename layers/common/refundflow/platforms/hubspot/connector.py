"""HubSpot as a TicketPlatform: the CRM v3 objects and v4 associations APIs, through the shared HTTP client.

No SDK: the official ``hubspot-api-client`` is generated code with a client per CRM object (its import pulls in every
object's models) and retries on its own; we use six endpoints and map their errors ourselves. What HubSpot documents
and this module relies on (developers.hubspot.com "Tickets" / "Notes" / "Associations v4" / "Contacts" guides, the
OpenAPI documents of HubSpot/HubSpot-public-api-spec-collection ``PublicApiSpecs/CRM/{Tickets,Notes,Contacts}/
Rollouts/424/v3`` and ``Associations/Rollouts/130902/v4``, "API usage guidelines and limits", "Error handling"):

- base URL ``https://api.hubapi.com``; a private app's access token as ``Authorization: Bearer <token>``, with the
  scopes the spec names: ``tickets`` (tickets, their associations), ``crm.objects.contacts.read`` (contacts, the
  notes batch read) and ``crm.objects.contacts.write`` (creating a note);
- ``GET /crm/v3/objects/tickets/{id}?properties=...&associations=contacts``: ``{id, properties: {name: string},
  associations: {contacts: {results: [{id, type}]}}}`` (only the properties asked for come back), then the first
  associated contact: ``GET /crm/v3/objects/contacts/{id}?properties=email,firstname,lastname``;
- ``POST /crm/v3/objects/notes`` ``{properties: {hs_timestamp, hs_note_body}, associations: [{to: {id}, types:
  [{associationCategory: HUBSPOT_DEFINED, associationTypeId: 228}]}]}``: a note on the ticket's timeline (note to
  ticket is type 228: hubspot-api-python ``hubspot/crm/association_type.py`` ``NOTE_TO_TICKET``; the body is at
  most 65,536 characters, hs_timestamp milliseconds or ISO 8601);
- ``PATCH /crm/v3/objects/tickets/{id}`` ``{properties: {hs_pipeline_stage, <refund status property>}}``: the
  stage (a pipeline stage id of the merchant's support pipeline, from HUBSPOT_STAGE_IDS) and the status property
  (a custom property the admin creates); a property that does not exist is a 400 ``VALIDATION_ERROR``;
- ``GET /crm/v4/objects/tickets/{id}/associations/notes`` (``paging.next.after``, up to 500 a page) and ``POST
  /crm/v3/objects/notes/batch/read`` (up to 100 ids, ``propertiesWithHistory`` is required by the spec): the ticket's
  notes, where a note whose answer was lost is looked for by its marker. The search API would do it in one call but
  is eventually consistent (a note just written may not be indexed yet), which is the one case this read is for;
- errors ``{status: "error", message, correlationId, category, errors?, context?}`` (``category``
  ``OBJECT_NOT_FOUND``, ``VALIDATION_ERROR``, ``INVALID_AUTHENTICATION``, ``MISSING_SCOPES``...); the rate limit
  is a 429 ``{status, message, errorType: "RATE_LIMIT", correlationId, policyName}``, the policy being the ten-second
  rolling window (``TEN_SECONDLY_ROLLING``) or the account's daily allowance (``DAILY``). HubSpot does not document a
  ``Retry-After`` on API answers: one is honoured when present; otherwise a ten-second window is retried after
  ``X-HubSpot-RateLimit-Interval-Milliseconds`` (10 s when absent), and the daily allowance, which resets at
  midnight in the account's time zone (unknown here), after DAILY_RETRY_SECONDS.
The ticket id is validated (ASCII digits) before it goes into a path. Updating a ticket or creating a note takes no
idempotency key: ``has_update`` finds a note whose answer was lost before it is written again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, retry_after_seconds, status_failure
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "hubspot"
DEFAULT_API_BASE = "https://api.hubapi.com"
NOTE_TO_TICKET = 228
# What the default mapping reads (mapping.yaml); HUBSPOT_TICKET_PROPERTIES adds a merchant mapping's own.
TICKET_PROPERTIES = (
    "subject",
    "content",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hubspot_owner_id",
    "hubspot_team_id",
    "hs_lastmodifieddate",
    "refund_payment_provider",
    "refund_payment_id",
    "refund_reason",
    "refund_order_id",
    "refund_invoice_system",
    "refund_invoice_id",
    "refund_amount",
    "refund_currency",
    "refund_status",
)
CONTACT_PROPERTIES = ("email", "firstname", "lastname", "hs_language")
ASSOCIATIONS_PAGE = 500
BATCH_READ = 100
MAX_NOTE_PAGES = 10
DAILY_RETRY_SECONDS = 3600.0
TEN_SECONDS = 10.0
MAX_NOTE_CHARACTERS = 65_536
TICKET_ID = re.compile(r"[0-9]{1,20}")
PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
STAGE_PAIR = re.compile(r"([a-z_]{1,40})=([A-Za-z0-9_-]{1,100})")


class HubSpotTickets(TicketPlatform):
    name = PLATFORM

    def __init__(
        self,
        http: HttpClient,
        *,
        stage_ids: Mapping[str, str] | None = None,
        status_property: str | None = "refund_status",
        extra_properties: tuple[str, ...] = (),
        now: Any = None,
    ) -> None:
        self.http = http
        self.stage_ids = dict(stage_ids or {})
        self.status_property = status_property
        self.properties = tuple(dict.fromkeys([*TICKET_PROPERTIES, *extra_properties]))
        self._now = now or (lambda: datetime.now(UTC))

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The ticket (``id``, ``properties``, ``associations``) with its first contact as ``requester``
        (``id``, ``email``, ``name``, ``locale``), absent when the ticket has none."""
        path = f"/crm/v3/objects/tickets/{_id(ticket_id)}"
        params = {"properties": ",".join(self.properties), "associations": "contacts"}
        response = self.http.request("GET", path, params=params)
        if not response.ok:
            self._fail(response, f"read ticket {ticket_id}", write=False)
        ticket = dict(response.json() or {})
        contacts = ((ticket.get("associations") or {}).get("contacts") or {}).get("results") or []
        contact_id = str(contacts[0].get("id", "")) if contacts and isinstance(contacts[0], dict) else ""
        if TICKET_ID.fullmatch(contact_id):
            ticket["requester"] = self._contact(contact_id, ticket_id)
        return ticket

    def _contact(self, contact_id: str, ticket_id: str) -> dict[str, Any] | None:
        response = self.http.request(
            "GET", f"/crm/v3/objects/contacts/{contact_id}", params={"properties": ",".join(CONTACT_PROPERTIES)}
        )
        if response.status == 404:
            return None  # the association outlived its contact: the ticket is still read
        if not response.ok:
            self._fail(response, f"read the contact of ticket {ticket_id}", write=False)
        properties = (response.json() or {}).get("properties") or {}
        name = " ".join(part for part in (properties.get("firstname"), properties.get("lastname")) if part) or None
        return {
            "id": contact_id,
            "email": properties.get("email"),
            "name": name,
            "locale": properties.get("hs_language"),
        }

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """The ticket's notes, MAX_NOTE_PAGES pages of associations at most, read in batches and searched for
        ``marker``."""
        path = f"/crm/v4/objects/tickets/{_id(ticket_id)}/associations/notes"
        after: str | None = None
        for _ in range(MAX_NOTE_PAGES):
            params: dict[str, Any] = {"limit": ASSOCIATIONS_PAGE, **({"after": after} if after else {})}
            response = self.http.request("GET", path, params=params)
            if not response.ok:
                self._fail(response, f"list the notes of ticket {ticket_id}", write=False)
            page = response.json() or {}
            note_ids = [str(item.get("toObjectId")) for item in page.get("results") or [] if item.get("toObjectId")]
            for start in range(0, len(note_ids), BATCH_READ):
                if self._marker_in(note_ids[start : start + BATCH_READ], marker, ticket_id):
                    return True
            after = (((page.get("paging") or {}).get("next")) or {}).get("after")
            if not after:
                return False
        return False

    def _marker_in(self, note_ids: list[str], marker: str, ticket_id: str) -> bool:
        body = {"inputs": [{"id": note_id} for note_id in note_ids], "properties": ["hs_note_body"]}
        body["propertiesWithHistory"] = []
        response = self.http.request("POST", "/crm/v3/objects/notes/batch/read", json=body)
        if not response.ok:
            self._fail(response, f"read the notes of ticket {ticket_id}", write=False)
        notes = (response.json() or {}).get("results") or []
        return any(marker in str((note.get("properties") or {}).get("hs_note_body") or "") for note in notes)

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        """The stage and status property first (setting them again is harmless), then the note, which carries the
        marker ``has_update`` looks for: a retry after a lost answer sets the same properties again and finds or
        writes the note, so the ticket never misses its state."""
        ticket = _id(ticket_id)
        properties: dict[str, str] = {}
        stage = self.stage_ids.get(update.label) if update.label else None
        if stage is not None:
            properties["hs_pipeline_stage"] = stage
        if self.status_property and update.label:
            properties[self.status_property] = update.label
        if properties:
            path = f"/crm/v3/objects/tickets/{ticket}"
            response = self.http.request("PATCH", path, json={"properties": properties})
            if not response.ok:
                self._fail(response, f"set the refund status of ticket {ticket_id}", write=True)
        now = self._now().astimezone(UTC)
        note = {
            "properties": {
                "hs_timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "hs_note_body": update.text[:MAX_NOTE_CHARACTERS],
            },
            "associations": [
                {
                    "to": {"id": ticket},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_TICKET}],
                }
            ],
        }
        response = self.http.request("POST", "/crm/v3/objects/notes", json=note)
        if not response.ok:
            self._fail(response, f"add a note to ticket {ticket_id}", write=True)

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        try:
            body = response.json() if response.body.lstrip().startswith(b"{") else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        category = str(body.get("category") or body.get("errorType") or "")
        words = str(body.get("message") or "")[:300]
        message = f"HubSpot could not {what}: {response.status} {category} {words}".strip()
        if response.status == 429:
            raise TransientError(
                message,
                code="rate_limited",
                platform=PLATFORM,
                retry_after_seconds=_rate_limit_wait(response, str(body.get("policyName") or "")),
            )
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)
        raise RejectedError(message, code=f"hubspot_{category or response.status}"[:60].lower(), platform=PLATFORM)


def _rate_limit_wait(response: HttpResponse, policy: str) -> float:
    """Retry-After when HubSpot sends one; else the window the policy names."""
    stated = retry_after_seconds(response)
    if stated is not None and stated > 0:
        return stated
    if policy.upper() == "DAILY":
        return DAILY_RETRY_SECONDS
    interval = {key.lower(): value for key, value in response.headers.items()}.get(
        "x-hubspot-ratelimit-interval-milliseconds", ""
    )
    return int(interval) / 1000 if interval.isdigit() and int(interval) > 0 else TEN_SECONDS


def _id(ticket_id: str) -> str:
    if not TICKET_ID.fullmatch(ticket_id):
        raise RejectedError(f"not a HubSpot ticket id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return ticket_id


class HubSpotSettings(settings.EnvModel):
    """HubSpot's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="HUBSPOT_API_BASE")
    stage_ids: str = Field(
        default="",
        alias="HUBSPOT_STAGE_IDS",
        description="label=stage id pairs, comma separated (completed=4,failed=1000002): the pipeline stage a "
        "refund label moves the ticket to; labels not named leave the stage alone.",
    )
    status_property: str = Field(default="refund_status", alias="HUBSPOT_REFUND_STATUS_PROPERTY")
    ticket_properties: str = Field(default="", alias="HUBSPOT_TICKET_PROPERTIES")


def parse_stage_ids(text: str) -> dict[str, str]:
    """``completed=4,failed=1000002`` -> ``{"completed": "4", "failed": "1000002"}``.

    Raises:
        ConfigurationError: a pair that is not ``label=stage id``.
    """
    stages: dict[str, str] = {}
    for pair in (part.strip() for part in text.split(",") if part.strip()):
        matched = STAGE_PAIR.fullmatch(pair)
        if matched is None:
            raise ConfigurationError(f"HUBSPOT_STAGE_IDS: {pair!r} is not label=stage id", platform=PLATFORM)
        stages[matched.group(1)] = matched.group(2)
    return stages


def _build(config: HubSpotSettings, name: str, secret: Mapping[str, Any]) -> HubSpotTickets:
    """From HUBSPOT_API_BASE and the API secret ``{"access_token": <private app token>}``.

    Raises:
        ConfigurationError: a secret of another shape, or settings HubSpot would refuse.
    """
    token = secret.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise ConfigurationError(f"secret {name}: access_token must be set", platform=PLATFORM)
    extra = tuple(part.strip() for part in config.ticket_properties.split(",") if part.strip())
    status_property = config.status_property.strip()
    for property_name in (*extra, *([status_property] if status_property else [])):
        if not PROPERTY_NAME.fullmatch(property_name):
            raise ConfigurationError(f"{property_name!r} is not a HubSpot property name", platform=PLATFORM)
    http = HttpClient(
        platform=PLATFORM,
        base_url=config.api_base,
        default_headers={"Authorization": f"Bearer {token.strip()}", "Accept": "application/json"},
    )
    return HubSpotTickets(
        http,
        stage_ids=parse_stage_ids(config.stage_ids),
        status_property=status_property or None,
        extra_properties=extra,
    )


connector: SecretBoundConnector[HubSpotSettings, HubSpotTickets] = SecretBoundConnector(
    PLATFORM, HubSpotSettings, _build
)
"""The process's HubSpotTickets, built from HubSpotSettings and its API secret (``<SecretsPrefix>hubspot``)."""
