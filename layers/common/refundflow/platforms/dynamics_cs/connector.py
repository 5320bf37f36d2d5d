"""Dynamics 365 Customer Service as a TicketPlatform: the Dataverse Web API v9.2, through the shared HTTP client.

No SDK: Microsoft's Python client for Dataverse (``PowerPlatform-Dataverse-Client``) brings ``azure-identity`` and
its own retries, and hides the ``Retry-After`` the kit must hand back; we use three endpoints, and the Entra ID
token is the shared ``EntraTokenSource`` the other Microsoft platforms use. What Microsoft documents and this module
relies on (learn.microsoft.com/power-apps/developer/data-platform/webapi: "Compose HTTP requests and handle
errors", "Retrieve a table row", "Update and delete table rows" (prevent create in upsert), "Associate table rows
on create" (``@odata.bind``), "Query data" (``$filter``, ``$select``, paging); reference "Note (Annotation)" and
"Case (Incident)" tables; "Service protection API limits"; "Web service error codes"):

- base URL ``https://<org>.crm.dynamics.com/api/data/v9.2``; ``Authorization: Bearer <token>`` from Entra ID's
  client-credentials grant with the scope ``https://<org>.crm.dynamics.com/.default`` (an application user in the
  environment with a security role that reads and writes cases and notes); ``OData-Version: 4.0``;
- ``GET /incidents(<guid>)?$select=...&$expand=customerid_contact($select=fullname,emailaddress1)``: the case's
  columns (``statecode`` 0 Active, 1 Resolved, 2 Cancelled; lookups as ``_<name>_value``; choice columns as their
  integer values), its customer contact expanded;
- ``PATCH /incidents(<guid>)`` with ``If-Match: *`` (a PATCH without it is an upsert that would create a case) and
  ``{"<refund status column>": <label>}``: 204;
- ``POST /annotations`` ``{subject, notetext, "objectid_incident@odata.bind": "/incidents(<guid>)"}``: 204, a note
  on the case's timeline (internal: notes never go to the customer);
- ``GET /annotations?$filter=_objectid_value eq <guid>&$select=subject,notetext`` (a GUID literal is unquoted in
  OData 4.0), ``Prefer: odata.maxpagesize=100``, the next page's URL in ``@odata.nextLink``;
- errors ``{"error": {"code": "0x...", "message"}}``; an unknown case is a 404 (its code, ``0x80040217``, is not
  relied on: the status decides); the service protection limits (per user, a 5-minute sliding window: requests
  ``0x80072322``, execution time ``0x80072321``, concurrent requests ``0x80072326``) answer 429 with
  ``Retry-After`` (seconds).

A resolved (or cancelled) case is read-only: Dataverse refuses to update it (``CaseAlreadyResolved``,
``0x800404cf``, "This case has already been resolved. Close and reopen the case record to see the updates.",
"Web service error codes"). Our choice: the status column is written while the case is open (a request, an
approval the agent gives before resolving), and on a resolved case the refund event goes to the note only, its
subject carrying the state (``Refund status: completed``). Reopening a case to write one column would restart its
SLA timers, re-route it and need a new case resolution: not ours to do. That Dataverse lets an application user add a
note to a resolved case is not stated in Microsoft's reference pages we found; a third-party knowledge base
(North52, KA-01106 "Prevent changes to existing notes on closed Cases") says new notes can be added to closed
cases: **unverified** against Microsoft's docs, the simulator allows it.

A write-back is the status column first (writing the same value again changes nothing), then the note that
carries the marker; a lost answer on either is retried safely: until the note is there, ``has_update`` says no.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pydantic import Field

from refundflow import settings
from refundflow.connectors.entra import DEFAULT_LOGIN_BASE, EntraTokenSource
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
from refundflow.connectors.oauth_tokens import send_with_token
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "dynamics_cs"
TITLE = "Dynamics 365 Customer Service"
DEFAULT_API_BASE = "https://example.crm.dynamics.com/api/data/v9.2"
DEFAULT_STATUS_COLUMN = "new_refundstatus"
CASE_ALREADY_RESOLVED = "0x800404cf"
NOTES_PER_PAGE = 100
MAX_NOTE_PAGES = 10
MAX_SUBJECT = 500  # annotation.subject is a 500-character string
STATUS_SUBJECT = "Refund status: "
NOTE_SUBJECT = "Refund update"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
COLUMN = re.compile(r"[a-z][a-z0-9_]{0,99}")
# What the default mapping reads (mapping.yaml); DYNAMICS_CS_CASE_COLUMNS adds a merchant mapping's own.
CASE_COLUMNS = (
    "incidentid",
    "ticketnumber",
    "title",
    "statecode",
    "statuscode",
    "modifiedon",
    "_ownerid_value",
    "_owningteam_value",
    "_modifiedby_value",
    "_customerid_value",
    "new_refundaction",
    "new_paymentprovider",
    "new_paymentid",
    "new_refundreason",
    "new_orderid",
    "new_invoicesystem",
    "new_invoiceid",
    "new_refundamount",
    "new_refundcurrency",
)
CONTACT_EXPAND = "customerid_contact($select=fullname,emailaddress1)"
ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


class DynamicsCases(TicketPlatform):
    name = PLATFORM

    def __init__(
        self,
        http: HttpClient,
        tokens: EntraTokenSource,
        *,
        status_column: str | None = DEFAULT_STATUS_COLUMN,
        extra_columns: tuple[str, ...] = (),
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.status_column = status_column
        self.columns = tuple(
            dict.fromkeys([*CASE_COLUMNS, *([status_column] if status_column else []), *extra_columns])
        )

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The case's columns, its customer contact as ``customerid_contact`` (null for an account)."""
        case = _id(ticket_id)
        params = {"$select": ",".join(self.columns), "$expand": CONTACT_EXPAND}
        response = self._call("GET", f"/incidents({case})", params=params)
        if not response.ok:
            self._fail(response, f"read case {ticket_id}", write=False)
        body = _json(response)
        if not isinstance(body, dict):
            raise TransientError(f"{TITLE} answered case {ticket_id} with no case", platform=PLATFORM)
        return body

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """The case's notes, ``@odata.nextLink`` followed only on our own base URL (our token never goes to a host
        an answer names), at most MAX_NOTE_PAGES pages."""
        case = _id(ticket_id)
        params: dict[str, str] | None = {
            "$filter": f"_objectid_value eq {case}",
            "$select": "subject,notetext",
        }
        url: str | None = None
        for _ in range(MAX_NOTE_PAGES):
            response = self._call(
                "GET", "/annotations", params=params, absolute_url=url, prefer=f"odata.maxpagesize={NOTES_PER_PAGE}"
            )
            if not response.ok:
                self._fail(response, f"read the notes of case {ticket_id}", write=False)
            page = _json(response)
            notes = page.get("value") if isinstance(page, dict) else None
            if not isinstance(notes, list):
                raise TransientError(f"{TITLE} answered the notes of case {ticket_id} with no list", platform=PLATFORM)
            if any(isinstance(note, dict) and marker in str(note.get("notetext") or "") for note in notes):
                return True
            url = page.get("@odata.nextLink") if isinstance(page, dict) else None
            if not isinstance(url, str) or not url.startswith(f"{self.http.base_url}/"):
                return False
            params = None
        return False

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        """The status column while the case is open, then the note with the marker (module docstring: a resolved
        case takes the note only, its subject carrying the state)."""
        case = _id(ticket_id)
        if self.status_column and update.label:
            response = self._call("PATCH", f"/incidents({case})", body={self.status_column: update.label}, if_match="*")
            if not response.ok and _error(response)[0].lower() != CASE_ALREADY_RESOLVED:
                self._fail(response, f"set the refund status of case {ticket_id}", write=True)
        subject = f"{STATUS_SUBJECT}{update.label}" if update.label else NOTE_SUBJECT
        note = {
            "subject": subject[:MAX_SUBJECT],
            "notetext": update.text,
            "objectid_incident@odata.bind": f"/incidents({case})",
        }
        response = self._call("POST", "/annotations", body=note)
        if not response.ok:
            self._fail(response, f"add a note to case {ticket_id}", write=True)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        absolute_url: str | None = None,
        if_match: str | None = None,
        prefer: str | None = None,
    ) -> HttpResponse:
        """One Web API call; a 401 buys a new token once and repeats the call."""
        data = json.dumps(body) if body is not None else None

        def send(token: str) -> HttpResponse:
            headers = {**ODATA_HEADERS, "Authorization": f"Bearer {token}"}
            if data is not None:
                headers["Content-Type"] = "application/json; charset=utf-8"
            if if_match:
                headers["If-Match"] = if_match
            if prefer:
                headers["Prefer"] = prefer
            return self.http.request(method, path, params=params, data=data, headers=headers, absolute_url=absolute_url)

        return send_with_token(self.tokens, send)

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        code, words = _error(response)
        message = f"{TITLE} could not {what}: {response.status} {code} {words}".strip()
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)  # the case is gone, on a read or a write
        suffix = re.sub(r"[^a-z0-9]", "", code.lower()) or str(response.status)
        raise RejectedError(message, code=f"dynamics_cs_{suffix}"[:60], platform=PLATFORM)


def _json(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise TransientError(f"{TITLE} answered with unreadable JSON", platform=PLATFORM) from error


def _error(response: HttpResponse) -> tuple[str, str]:
    """Dataverse's ``{"error": {"code", "message"}}``: the code and the message's first line."""
    try:
        body = response.json() if response.body.lstrip().startswith(b"{") else None
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    message = str(error.get("message") or "").splitlines()
    return str(error.get("code") or "")[:40], (message[0] if message else "")[:300]


def _id(ticket_id: str) -> str:
    """The case GUID as it goes into a path: lower-case hex and hyphens only."""
    if not isinstance(ticket_id, str) or not GUID.fullmatch(ticket_id.lower()) or not ticket_id.isascii():
        raise RejectedError(f"not a Dataverse case id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return ticket_id.lower()


def scope_of(api_base: str) -> str:
    """The Entra ID scope of the environment: its origin and ``/.default`` (``https://<org>.crm.dynamics.com``)."""
    parts = urlsplit(api_base)
    return f"{parts.scheme}://{parts.netloc}/.default"


class DynamicsCaseSettings(settings.EnvModel):
    """Dynamics 365 Customer Service's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="DYNAMICS_CS_API_BASE")
    login_base: str = Field(default=DEFAULT_LOGIN_BASE, alias="DYNAMICS_CS_LOGIN_BASE")
    status_column: str = Field(default=DEFAULT_STATUS_COLUMN, alias="DYNAMICS_CS_REFUND_STATUS_COLUMN")
    case_columns: str = Field(default="", alias="DYNAMICS_CS_CASE_COLUMNS")


def _build(config: DynamicsCaseSettings, name: str, secret: Mapping[str, Any]) -> DynamicsCases:
    """From DYNAMICS_CS_API_BASE, DYNAMICS_CS_LOGIN_BASE and the API secret ``{"tenant_id", "client_id",
    "client_secret"}`` (the app registration of the environment's application user).

    Raises:
        ConfigurationError: a secret of another shape, or a column name Dataverse would refuse.
    """
    values = {key: secret.get(key) for key in ("tenant_id", "client_id", "client_secret")}
    for key, value in values.items():
        if not isinstance(value, str) or not value.strip() or "/" in value:
            raise ConfigurationError(f"secret {name}: {key} must be set", platform=PLATFORM)
    status_column = config.status_column.strip()
    extra = tuple(part.strip() for part in config.case_columns.split(",") if part.strip())
    for column in (*extra, *([status_column] if status_column else [])):
        if not COLUMN.fullmatch(column):
            raise ConfigurationError(f"{column!r} is not a Dataverse column's logical name", platform=PLATFORM)
    tokens = EntraTokenSource(
        platform=PLATFORM,
        title=TITLE,
        scope=scope_of(config.api_base),
        login_base=config.login_base,
        tenant_id=str(values["tenant_id"]).strip(),
        client_id=str(values["client_id"]).strip(),
        client_secret=str(values["client_secret"]),
    )
    http = HttpClient(platform=PLATFORM, base_url=config.api_base)
    return DynamicsCases(http, tokens, status_column=status_column or None, extra_columns=extra)


connector: SecretBoundConnector[DynamicsCaseSettings, DynamicsCases] = SecretBoundConnector(
    PLATFORM, DynamicsCaseSettings, _build
)
"""The process's DynamicsCases, built from DynamicsCaseSettings and its API secret (``<SecretsPrefix>dynamics_cs``)."""
