"""ServiceNow as a TicketPlatform: the Table API, through the shared HTTP client.

No SDK: ServiceNow publishes no Python SDK; the community ``pysnow`` has been unmaintained since 2021 and raises its own
exceptions without the ``Retry-After`` value. What ServiceNow documents and this module relies on (ServiceNowDocs,
``markdown/api-reference/rest-apis/c_TableAPI.md``; "Inbound REST API rate limiting"; "Client Credentials" under
platform security, Washington DC and later):

- ``GET /api/now/table/{table}/{sys_id}``: one record, every field a string (actual values by default; with
  ``sysparm_exclude_reference_link=true`` a reference field is its sys_id, not ``{"link", "value"}``); 404 for an
  unknown record (or one an ACL hides);
- ``PATCH /api/now/table/{table}/{sys_id}``: only the fields sent change; ``work_notes`` is a journal field, so the
  text sent becomes a new internal work note (not shown to the caller, unlike ``comments``); answers the record;
  the customer's message is ``comments`` alone (Additional comments, customer visible: the caller sees it and the
  base instance's notifications e-mail it);
- ``GET /api/now/table/sys_journal_field?sysparm_query=element_id=<sys_id>^element=work_notes`` (or ``comments``):
  the record's work notes (additional comments), one row each (``value``), paged with ``sysparm_limit`` /
  ``sysparm_offset`` (journal entries live in the Journal Entries [sys_journal_field] table); with
  ``sysparm_display_value=true`` a record's ``work_notes`` (``comments``) reads as all its entries in one text (the
  Table API's display values; the text's layout is not documented, only the marker is looked for in it);
- ``POST /oauth_token.do`` (form: ``grant_type=client_credentials`` with ``client_id`` / ``client_secret``, since
  the Washington DC release and only where the instance enables it; or ``grant_type=password`` with a user's name
  and password too): ``{"access_token", "expires_in", "token_type": "Bearer", ...}``;
- errors ``{"error": {"message", "detail"}, "status": "failure"}`` (the shape every ServiceNow client handles; not
  found in ServiceNow's own reference text: unverified there);
- rate limit rules per user and hour: ``X-RateLimit-Limit`` / ``-Reset`` / ``-Rule`` on every answer a rule
  matches, 429 with ``Retry-After`` (seconds) past the limit.

A write-back is one PATCH: the work note that carries the marker, the refund status field (``u_refund_status`` by
default) and, only where the merchant maps the label to one, the record's ``state``. A lost answer is safe: until
the note is there ``has_update`` says no and the PATCH is sent again; once it is there, all of it is.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import (
    HttpClient,
    HttpResponse,
    missing,
    oauth_error_words,
    status_failure,
)
from refundflow.connectors.oauth_tokens import CachedTokenSource, send_with_token, token_endpoint_failure
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "servicenow"
DEFAULT_INSTANCE_URL = "https://example.service-now.com"
DEFAULT_TABLE = "incident"
TABLES = ("incident", "sn_customerservice_case")
DEFAULT_STATUS_FIELD = "u_refund_status"
# Who asked: the incident's caller, or the case's contact (a sys_user, read for its name and e-mail).
REQUESTER_FIELDS = ("caller_id", "contact")
JOURNAL_PAGE = 100
MAX_JOURNAL_PAGES = 10
REPLY_MARKER = "refundflow:reply:"  # the customer's message (an additional comment): domain.tickets.public_reply_update
# Refresh a little before the instance's access tokens expire (ServiceNow's default lifespan: 1,800 s).
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
SYS_ID = re.compile(r"[0-9a-f]{32}")  # the id goes into the request's path and an encoded query
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,79}")
STATE_VALUE = re.compile(r"-?[0-9]{1,4}")
AuthMode = Literal["basic", "oauth_client_credentials", "oauth_password"]
AUTH_MODES: tuple[AuthMode, ...] = ("basic", "oauth_client_credentials", "oauth_password")


class ServiceNowTokens(CachedTokenSource):
    """Bearer tokens from the instance's ``/oauth_token.do``, cached until shortly before they expire and forgotten
    when the Table API answers 401 to one. ``grant``: ``client_credentials`` or ``password`` (then ``username`` and
    ``password`` are sent too). No refresh token is used: the grant is simply made again."""

    def __init__(
        self,
        http: HttpClient,
        *,
        grant: Literal["client_credentials", "password"],
        client_id: str,
        client_secret: str,
        username: str | None = None,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        super().__init__(clock=clock, expiry_margin_seconds=expiry_margin_seconds)
        self._http = http
        self._form = {"grant_type": grant, "client_id": client_id, "client_secret": client_secret}
        if grant == "password":
            self._form |= {"username": username or "", "password": password or ""}

    def _fetch(self) -> tuple[str, float]:
        """Raises: TransientError (the instance could not answer now), RejectedError ``servicenow_credentials``."""
        response = self._http.request(
            "POST", "/oauth_token.do", data=self._form, headers={"Accept": "application/json"}
        )
        if response.status != 200:
            words = oauth_error_words(response)
            raise token_endpoint_failure(
                response,
                platform=PLATFORM,
                unavailable=f"ServiceNow's token endpoint is unavailable ({words})",
                unavailable_code="servicenow_identity_unavailable",
                refused=f"ServiceNow refused the OAuth client's credentials ({words}): check the client id and secret "
                "(and the user for the password grant)",
                refused_code="servicenow_credentials",
            )
        try:
            payload = json.loads(response.body, parse_float=Decimal) if response.body else None
        except ValueError as error:
            raise TransientError("ServiceNow answered the token request with no JSON", platform=PLATFORM) from error
        token = payload.get("access_token") if isinstance(payload, Mapping) else None
        expires_in = payload.get("expires_in") if isinstance(payload, Mapping) else None
        if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | Decimal):
            raise TransientError("ServiceNow answered without a usable access token", platform=PLATFORM)
        if isinstance(expires_in, bool):
            raise TransientError("ServiceNow answered without a usable access token", platform=PLATFORM)
        return token, float(expires_in)


class ServiceNowTickets(TicketPlatform):
    name = PLATFORM

    def __init__(
        self,
        http: HttpClient,
        *,
        table: str = DEFAULT_TABLE,
        status_field: str | None = DEFAULT_STATUS_FIELD,
        states: Mapping[str, str] | None = None,
        tokens: ServiceNowTokens | None = None,
    ) -> None:
        """``http`` carries Basic credentials itself when ``tokens`` is None; ``states``: refund label -> the
        record's ``state`` value (only the labels named move the state)."""
        self.http = http
        self.table = table
        self.status_field = status_field
        self.states = dict(states or {})
        self.tokens = tokens

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The record (actual values, references as sys_ids) with ``requester``: its caller's (or contact's)
        ``{"name", "email"}`` from ``sys_user``, or None."""
        sys_id = _id(ticket_id)
        params = {"sysparm_exclude_reference_link": "true"}
        response = self._request("GET", f"/api/now/table/{self.table}/{sys_id}", params=params)
        if not response.ok:
            self._fail(response, f"read {self.table} {sys_id}", write=False)
        record = _result(response)
        if not isinstance(record, dict):
            raise RejectedError(f"ServiceNow answered {self.table} {sys_id} with no record", platform=PLATFORM)
        requester_id = next((record.get(field) for field in REQUESTER_FIELDS if record.get(field)), None)
        record["requester"] = self._user(requester_id) if isinstance(requester_id, str) else None
        return record

    def _user(self, sys_id: str) -> dict[str, Any] | None:
        if not SYS_ID.fullmatch(sys_id):
            return None
        params = {"sysparm_fields": "sys_id,name,email,user_name", "sysparm_exclude_reference_link": "true"}
        response = self._request("GET", f"/api/now/table/sys_user/{sys_id}", params=params)
        if response.status == 404:
            return None  # the caller's user record is gone or hidden: the mapping sees no requester
        if not response.ok:
            self._fail(response, f"read the caller {sys_id}", write=False)
        user = _result(response)
        return user if isinstance(user, dict) else None

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """Whether the journal refundflow writes ``marker``'s update to carries it (a work note; an additional
        comment for the customer's message, whose marker is ``refundflow:reply:...``): the record's rows of
        ``sys_journal_field`` (newest first, at most MAX_JOURNAL_PAGES pages), then, if none does, the record's
        display value of that journal (every entry in one text). The second read covers an integration user whose
        read ACLs on the journal table filter its rows out (ServiceNow answers such a list with fewer rows, not with
        an error). A marker in the other journal (an agent who pasted a note into a comment) is not ours."""
        sys_id = _id(ticket_id)
        journal = "comments" if marker.startswith(REPLY_MARKER) else "work_notes"
        if self._journal_has(sys_id, journal, marker):
            return True
        params = {"sysparm_fields": journal, "sysparm_display_value": "true"}
        response = self._request("GET", f"/api/now/table/{self.table}/{sys_id}", params=params)
        if not response.ok:
            self._fail(response, f"read the {journal} of {self.table} {sys_id}", write=False)
        record = _result(response)
        text = record.get(journal) if isinstance(record, dict) else None
        return isinstance(text, str) and marker in text

    def _journal_has(self, sys_id: str, journal: str, marker: str) -> bool:
        query = f"element_id={sys_id}^element={journal}^ORDERBYDESCsys_created_on"
        for page in range(MAX_JOURNAL_PAGES):
            params = {
                "sysparm_query": query,
                "sysparm_fields": "sys_id,value",
                "sysparm_limit": str(JOURNAL_PAGE),
                "sysparm_offset": str(page * JOURNAL_PAGE),
            }
            response = self._request("GET", "/api/now/table/sys_journal_field", params=params)
            if not response.ok:
                self._fail(response, f"read the work notes of {sys_id}", write=False)
            rows = _result(response)
            items = [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
            if any(marker in str(row.get("value", "")) for row in items):
                return True
            if len(items) < JOURNAL_PAGE:
                return False
        return False

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        sys_id = _id(ticket_id)
        if update.kind == "public_reply":  # an additional comment: customer visible, the caller is notified
            comment = {"comments": update.text}
            params = {"sysparm_fields": "sys_id", "sysparm_exclude_reference_link": "true"}
            response = self._request("PATCH", f"/api/now/table/{self.table}/{sys_id}", params=params, json=comment)
            if not response.ok:
                self._fail(response, f"comment on {self.table} {sys_id}", write=True)
            return
        fields: dict[str, str] = {"work_notes": update.text}
        if update.label and self.status_field:
            fields[self.status_field] = update.label
        if update.label and update.label in self.states:
            fields["state"] = self.states[update.label]
        params = {"sysparm_fields": "sys_id", "sysparm_exclude_reference_link": "true"}
        response = self._request("PATCH", f"/api/now/table/{self.table}/{sys_id}", params=params, json=fields)
        if not response.ok:
            self._fail(response, f"update {self.table} {sys_id}", write=True)

    def _request(self, method: str, path: str, **options: Any) -> HttpResponse:
        """One Table API call; with OAuth, a 401 forgets the token and the call is made once more with a new one."""
        if self.tokens is None:
            return self.http.request(method, path, **options)
        return send_with_token(
            self.tokens,
            lambda token: self.http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **options),
        )

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        message = f"ServiceNow could not {what}: {response.status} {_error_words(response)}".strip()
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)  # the record is gone, on a read or a write
        raise RejectedError(message, code=f"servicenow_{response.status}", platform=PLATFORM)


def _result(response: HttpResponse) -> Any:
    """The Table API's ``{"result": ...}``."""
    try:
        body = response.json()
    except ValueError as error:
        raise TransientError("ServiceNow answered with unreadable JSON", platform=PLATFORM) from error
    return body.get("result") if isinstance(body, dict) else None


def _error_words(response: HttpResponse) -> str:
    """ServiceNow's own words: ``error.message: error.detail``."""
    try:
        body = response.json() if response.body.lstrip().startswith(b"{") else None
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    words = ": ".join(str(part) for part in (error.get("message"), error.get("detail")) if part)
    return words.splitlines()[0][:300] if words else ""


def _id(ticket_id: str) -> str:
    if not SYS_ID.fullmatch(ticket_id):
        raise RejectedError(f"not a ServiceNow sys_id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return ticket_id


def parse_states(text: str) -> dict[str, str]:
    """``issued=6,completed=7``: refund label -> the record's state value (an integer choice).

    Raises:
        ConfigurationError: a pair that is not ``label=integer``.
    """
    states: dict[str, str] = {}
    for pair in (part.strip() for part in text.split(",")):
        if not pair:
            continue
        label, _, value = pair.partition("=")
        if not re.fullmatch(r"[a-z_]{1,40}", label.strip()) or not STATE_VALUE.fullmatch(value.strip()):
            raise ConfigurationError(f"SERVICENOW_STATES: {pair!r} is not label=state (e.g. completed=6)")
        states[label.strip()] = value.strip()
    return states


class ServiceNowSettings(settings.EnvModel):
    """ServiceNow's own settings (its catalog entry's ``settings``, set on its function only)."""

    instance_url: str = Field(default=DEFAULT_INSTANCE_URL, alias="SERVICENOW_INSTANCE_URL")
    table: str = Field(default=DEFAULT_TABLE, alias="SERVICENOW_TABLE")
    auth: str = Field(default="oauth_client_credentials", alias="SERVICENOW_AUTH")
    status_field: str = Field(default=DEFAULT_STATUS_FIELD, alias="SERVICENOW_REFUND_STATUS_FIELD")
    states: str = Field(default="", alias="SERVICENOW_STATES")


def _text(secret: Mapping[str, Any], key: str, name: str, what: str) -> str:
    value = secret.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"secret {name}: {key} must be set ({what})")
    return value


def _build(config: ServiceNowSettings, name: str, secret: Mapping[str, Any]) -> ServiceNowTickets:
    """From the SERVICENOW_* settings and the API secret: ``{"username", "password"}`` for basic,
    ``{"client_id", "client_secret"}`` for oauth_client_credentials, all four for oauth_password.

    Raises:
        ConfigurationError: an unknown table or auth mode, a status field that is not a field name, bad state pairs,
            or a secret of another shape.
    """
    if config.table not in TABLES:
        raise ConfigurationError(f"SERVICENOW_TABLE must be one of {', '.join(TABLES)}")
    if config.auth not in AUTH_MODES:
        raise ConfigurationError(f"SERVICENOW_AUTH must be one of {', '.join(AUTH_MODES)}")
    if config.status_field and not FIELD_NAME.fullmatch(config.status_field):
        raise ConfigurationError("SERVICENOW_REFUND_STATUS_FIELD must be a field's column name (u_...), or empty")
    states = parse_states(config.states)
    headers = {"Accept": "application/json"}
    tokens: ServiceNowTokens | None = None
    username: str | None = None
    password: str | None = None
    if config.auth == "basic":
        username = _text(secret, "username", name, "the integration user")
        password = _text(secret, "password", name, "the integration user's password")
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {credentials}"
    else:
        client_id = _text(secret, "client_id", name, "the OAuth application registry's client id")
        client_secret = _text(secret, "client_secret", name, "its client secret")
        grant: Literal["client_credentials", "password"] = "client_credentials"
        if config.auth == "oauth_password":
            grant = "password"
            username = _text(secret, "username", name, "the integration user")
            password = _text(secret, "password", name, "the integration user's password")
        token_http = HttpClient(platform=PLATFORM, base_url=config.instance_url)
        tokens = ServiceNowTokens(
            token_http,
            grant=grant,
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
        )
    http = HttpClient(platform=PLATFORM, base_url=config.instance_url, default_headers=headers)
    return ServiceNowTickets(
        http, table=config.table, status_field=config.status_field or None, states=states, tokens=tokens
    )


connector: SecretBoundConnector[ServiceNowSettings, ServiceNowTickets] = SecretBoundConnector(
    PLATFORM, ServiceNowSettings, _build
)
"""The process's ServiceNowTickets, built from ServiceNowSettings and its API secret (``<SecretsPrefix>servicenow``)."""
