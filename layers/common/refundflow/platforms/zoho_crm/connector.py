"""Zoho CRM as a TicketPlatform: the CRM REST API v8 on a Deals (or Cases) record, through the shared HTTP client.

No SDK: the official ``zohocrmsdk8-0`` keeps its own token store, initialiser and per-module model classes and maps
errors to its own exception types; we use four endpoints and one token grant (refundflow.connectors.zoho). What Zoho
documents and this module relies on (www.zoho.com/crm/developer/docs/api/v8/: "Get Records", "Update Records",
"Create Notes", "Get Notes", "Status Codes", "API Limits", "Multi DC Support"; the OpenAPI files of
github.com/zoho/crm-oas ``v8.0/record.json`` and ``v8.0/notes``):

- base URL ``https://www.zohoapis.<dc>/crm/v8`` (com, eu, in, com.au, jp, ca, com.cn, sa), header
  ``Authorization: Zoho-oauthtoken <access token>`` from the same data centre's accounts server; scopes
  ``ZohoCRM.modules.deals.ALL`` (or ``cases``), ``ZohoCRM.modules.contacts.READ``, ``ZohoCRM.modules.notes.ALL``;
- ``GET /{module}/{id}``: ``{"data": [<record>]}`` with each field by its API name (picklists as their display
  values, lookups as ``{"name", "id"}``, ``Owner`` as ``{"name", "id", "email"}``); the deal's contact is read with
  ``GET /Contacts/{id}`` (``Email``, ``Full_Name``) and added as ``requester``;
- ``PUT /{module}/{id}`` ``{"data": [{<field>: <value>}], "trigger": []}``: only the fields sent change; ``trigger``
  empty so that our own write fires no workflow rule (absent, Zoho runs workflow, approval and blueprint rules);
  answers ``{"data": [{"code": "SUCCESS", "details": {...}, "message": "record updated", "status": "success"}]}``;
- ``POST /Notes`` ``{"data": [{"Note_Title", "Note_Content", "Parent_Id": {"module": {"api_name"}, "id"}}]}``
  (crm-oas ``v8.0/notes/operations/createNotesModule``): 201 with the same per-record answer;
- ``GET /{module}/{id}/Notes?fields=Note_Title,Note_Content&per_page=200&page=N``: the record's notes, with
  ``info.more_records`` while more follow; 204 and no body when there are none;
- errors: per record ``{"data": [{"code", "details", "message", "status": "error"}]}`` (``INVALID_DATA``,
  ``MANDATORY_NOT_FOUND``...), or ``{"code", "details", "message", "status"}`` for the request (``INVALID_TOKEN``
  401, ``OAUTH_SCOPE_MISMATCH`` 401, ``NO_PERMISSION`` 403, ``INVALID_URL_PATTERN`` 404, ``TOO_MANY_REQUESTS``
  429, ``INTERNAL_ERROR`` 500). An unknown record is a 204 on a read and ``INVALID_DATA`` naming ``id`` on a write
  (the exact ``details`` is **unverified**: any INVALID_DATA whose details name the id is taken for a missing record).
  The 429 carries the wait in ``Retry-After`` when sent, else in ``details.retry_after`` (the crm-oas sample); Zoho's
  credits are counted per day and its concurrency per org, so without either the wait is DEFAULT_RETRY_SECONDS.

A 401 forgets the access token and repeats the call once with a new one. Record ids are digits (Zoho's are 19
digits long, e.g. ``4876876000005996165`` in crm-oas): anything else never reaches a path. A write-back is the field
update first (writing the same value again changes nothing), then the note with the marker ``has_update`` looks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, retry_after_seconds, status_failure
from refundflow.connectors.oauth_tokens import send_with_token
from refundflow.connectors.zoho import ZohoTokenSource
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "zoho_crm"
TITLE = "Zoho CRM"
DEFAULT_API_BASE = "https://www.zohoapis.com/crm/v8"
DEFAULT_ACCOUNTS_BASE = "https://accounts.zoho.com"
MODULES = {"Deals": "Stage", "Cases": "Status"}  # the module and its own stage field
NOTES_PER_PAGE = 200  # Zoho's maximum per_page
MAX_NOTE_PAGES = 10
MAX_NOTE_CHARACTERS = 32_000
DEFAULT_RETRY_SECONDS = 60.0
RECORD_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: the id goes into the request's path
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
STAGE_PAIR = re.compile(r"([a-z_]{1,40})=([^,=]{1,120})")
NOTE_TITLE = "Refund update (refundflow)"


class ZohoCrmRecords(TicketPlatform):
    """A Zoho CRM module's records as tickets: read, notes searched for a marker, field update and note."""

    name = PLATFORM

    def __init__(
        self,
        *,
        tokens: ZohoTokenSource,
        http: HttpClient,
        module: str = "Deals",
        status_field: str | None = "Refund_Status",
        stages: Mapping[str, str] | None = None,
        contact_field: str | None = "Contact_Name",
    ) -> None:
        if module not in MODULES:
            raise ConfigurationError(f"ZOHO_CRM_MODULE must be one of {sorted(MODULES)}", platform=PLATFORM)
        self.tokens = tokens
        self.http = http
        self.module = module
        self.stage_field = MODULES[module]
        self.status_field = status_field
        self.stages = dict(stages or {})
        self.contact_field = contact_field

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The record as the API answers it, with its contact (``contact_field``'s lookup) as ``requester``
        (``id``, ``email``, ``name``) when it has one."""
        response = self._call("GET", f"/{self.module}/{_id(ticket_id)}")
        if response.status == 204 or not response.ok:
            self._fail(response, f"read {self.module} record {ticket_id}", write=False)
        record = _first(response)
        if record is None:
            raise TransientError(
                f"Zoho CRM answered {self.module} record {ticket_id} with no record", platform=PLATFORM
            )
        lookup = record.get(self.contact_field) if self.contact_field else None
        contact_id = str(lookup.get("id") or "") if isinstance(lookup, dict) else ""
        if RECORD_ID.fullmatch(contact_id):
            record["requester"] = self._contact(contact_id, ticket_id)
        return record

    def _contact(self, contact_id: str, ticket_id: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/Contacts/{contact_id}")
        if response.status == 204 or _invalid_id(response):
            return None  # the lookup outlived its contact: the record is still read
        if not response.ok:
            self._fail(response, f"read the contact of {self.module} record {ticket_id}", write=False)
        contact = _first(response) or {}
        name = contact.get("Full_Name") or " ".join(
            str(part) for part in (contact.get("First_Name"), contact.get("Last_Name")) if part
        )
        return {"id": contact_id, "email": contact.get("Email"), "name": name or None}

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """The record's notes, NOTES_PER_PAGE a page while ``info.more_records``, at most MAX_NOTE_PAGES pages."""
        path = f"/{self.module}/{_id(ticket_id)}/Notes"
        for page in range(1, MAX_NOTE_PAGES + 1):
            params = {"fields": "Note_Title,Note_Content", "per_page": NOTES_PER_PAGE, "page": page}
            response = self._call("GET", path, params=params)
            if response.status == 204:
                return False
            if not response.ok:
                self._fail(response, f"read the notes of {self.module} record {ticket_id}", write=False)
            body = _body(response)
            data = body.get("data")
            notes: list[Any] = data if isinstance(data, list) else []
            if any(isinstance(note, dict) and marker in str(note.get("Note_Content") or "") for note in notes):
                return True
            info = body.get("info")
            if not isinstance(info, dict) or info.get("more_records") is not True:
                return False
        return False

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        """The status field and stage first (setting them again is harmless; a note-only update sets neither), then
        the note, which carries the marker: a retry after a lost answer writes the same fields again and finds or
        writes the note."""
        record_id = _id(ticket_id)
        fields: dict[str, str] = {}
        if update.label:
            if self.status_field:
                fields[self.status_field] = update.label
            stage = self.stages.get(update.label)
            if stage is not None:
                fields[self.stage_field] = stage
        if fields:
            response = self._call(
                "PUT", f"/{self.module}/{record_id}", json={"data": [fields], "trigger": []}, write=True
            )
            self._check_written(response, f"set the refund status of {self.module} record {ticket_id}")
        note = {
            "Note_Title": NOTE_TITLE,
            "Note_Content": update.text[:MAX_NOTE_CHARACTERS],
            "Parent_Id": {"module": {"api_name": self.module}, "id": record_id},
        }
        response = self._call("POST", "/Notes", json={"data": [note]}, write=True)
        self._check_written(response, f"add a note to {self.module} record {ticket_id}")

    # ------------------------------------------------------------ HTTP

    def _call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None, write: bool = False
    ) -> HttpResponse:
        """One API call with the cached access token; a 401 forgets it and repeats the call once with a new one."""

        def send(token: str) -> HttpResponse:
            headers = {"Authorization": f"Zoho-oauthtoken {token}", "Accept": "application/json"}
            return self.http.request(method, path, params=params, json=json, headers=headers)

        return send_with_token(self.tokens, send)

    def _check_written(self, response: HttpResponse, what: str) -> None:
        """A 2xx whose one record answer is ``status: success``; anything else fails."""
        if response.ok:
            record = _first(response)
            if record is not None and record.get("status") == "success":
                return
            if record is None:
                raise TransientError(f"Zoho CRM could not {what}: no record answer", platform=PLATFORM)
        self._fail(response, what, write=True)

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        error = _error(response)
        code = str(error.get("code") or "")
        words = str(error.get("message") or "")[:300]
        message = f"Zoho CRM could not {what}: {response.status} {code} {words}".strip()
        if response.status == 204 or _invalid_id(response):
            # an unknown record, on a read or a write (the update is dropped, and ops hear of it); a 404 is Zoho's
            # INVALID_URL_PATTERN (a wrong base URL or module), refused below
            raise missing(message, platform=PLATFORM, write=False)
        if response.status == 429:
            raise TransientError(
                message, code="rate_limited", platform=PLATFORM, retry_after_seconds=_rate_limit_wait(response)
            )
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        raise RejectedError(message, code=f"zoho_crm_{code.lower() or response.status}"[:60], platform=PLATFORM)


def _body(response: HttpResponse) -> dict[str, Any]:
    try:
        body = response.json() if response.body.lstrip().startswith(b"{") else None
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _first(response: HttpResponse) -> dict[str, Any] | None:
    """The first entry of ``data`` (the one record of a read, the one answer of a write)."""
    data = _body(response).get("data")
    first = data[0] if isinstance(data, list) and data else None
    return dict(first) if isinstance(first, dict) else None


def _error(response: HttpResponse) -> dict[str, Any]:
    """The request's error, or its one record's."""
    body = _body(response)
    first = _first(response)
    if first is not None and first.get("status") == "error":
        return first
    return body


def _invalid_id(response: HttpResponse) -> bool:
    """Zoho's answer for an id it does not know: INVALID_DATA whose details name the id (``{"id": ...}`` or
    ``{"api_name": "id"}``)."""
    error = _error(response)
    found = error.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    return error.get("code") == "INVALID_DATA" and ("id" in details or details.get("api_name") in ("id", "Parent_Id"))


def _rate_limit_wait(response: HttpResponse) -> float:
    stated = retry_after_seconds(response)
    if stated is not None and stated > 0:
        return stated
    details = _error(response).get("details")
    wait = details.get("retry_after") if isinstance(details, dict) else None
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0:
        return float(wait)
    return DEFAULT_RETRY_SECONDS


def _id(ticket_id: str) -> str:
    if not RECORD_ID.fullmatch(ticket_id):
        raise RejectedError(f"not a Zoho CRM record id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return ticket_id


class ZohoCrmSettings(settings.EnvModel):
    """Zoho CRM's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="ZOHO_CRM_API_BASE")
    accounts_base: str = Field(default=DEFAULT_ACCOUNTS_BASE, alias="ZOHO_CRM_ACCOUNTS_BASE")
    module: str = Field(default="Deals", alias="ZOHO_CRM_MODULE")
    status_field: str = Field(default="Refund_Status", alias="ZOHO_CRM_REFUND_STATUS_FIELD")
    stages: str = Field(default="", alias="ZOHO_CRM_STAGES")
    contact_field: str = Field(default="Contact_Name", alias="ZOHO_CRM_CONTACT_FIELD")


def parse_stages(text: str) -> dict[str, str]:
    """``completed=Closed Won,failed=Refund Failed`` -> ``{"completed": "Closed Won", ...}``.

    Raises:
        ConfigurationError: a pair that is not ``label=stage``.
    """
    stages: dict[str, str] = {}
    for pair in (part.strip() for part in text.split(",") if part.strip()):
        matched = STAGE_PAIR.fullmatch(pair)
        if matched is None:
            raise ConfigurationError(f"ZOHO_CRM_STAGES: {pair!r} is not label=stage", platform=PLATFORM)
        stages[matched.group(1)] = matched.group(2).strip()
    return stages


def _build(config: ZohoCrmSettings, name: str, secret: Mapping[str, Any]) -> ZohoCrmRecords:
    """From ZohoCrmSettings and the API secret ``{"client_id", "client_secret", "refresh_token"}`` (a self client's
    or server-based client's refresh token, at the data centre of ZOHO_CRM_ACCOUNTS_BASE).

    Raises:
        ConfigurationError: a secret of another shape, or settings Zoho would refuse.
    """
    for key in ("client_id", "client_secret", "refresh_token"):
        if not isinstance(secret.get(key), str) or not secret[key].strip():
            raise ConfigurationError(f"secret {name}: {key} must be set", platform=PLATFORM)
    for setting, value in (
        ("ZOHO_CRM_REFUND_STATUS_FIELD", config.status_field),
        ("ZOHO_CRM_CONTACT_FIELD", config.contact_field),
    ):
        if value and not FIELD_NAME.fullmatch(value):
            raise ConfigurationError(f"{setting}: {value!r} is not a field's API name", platform=PLATFORM)
    snapshot = dict(secret)
    tokens = ZohoTokenSource(
        accounts_base=config.accounts_base,
        load_secret=lambda force: _fresh_secret(name) if force else snapshot,
        platform=PLATFORM,
        title=TITLE,
    )
    http = HttpClient(platform=PLATFORM, base_url=config.api_base)
    return ZohoCrmRecords(
        tokens=tokens,
        http=http,
        module=config.module,
        status_field=config.status_field or None,
        stages=parse_stages(config.stages),
        contact_field=config.contact_field or None,
    )


def _fresh_secret(name: str) -> Mapping[str, Any]:
    from refundflow.adapters.secrets import get_json_secret

    return get_json_secret(name, force_fetch=True)


connector: SecretBoundConnector[ZohoCrmSettings, ZohoCrmRecords] = SecretBoundConnector(
    PLATFORM, ZohoCrmSettings, _build
)
"""The process's ZohoCrmRecords, built from ZohoCrmSettings and its API secret (``<SecretsPrefix>zoho_crm``)."""
