"""Salesforce Service Cloud as a TicketPlatform: the REST API, through the shared HTTP client.

No SDK: ``simple-salesforce`` (community) logs in by itself (username/password, JWT, or client credentials with its
own session handling), raises its own exception classes without the answer's headers, and has no composite helper
with allOrNone; we use four resources and map Salesforce's errors ourselves. What Salesforce documents and this
module relies on (developer.salesforce.com, REST API Developer Guide: "Status Codes and Error Responses"
(errorcodes.htm), "Get Field Values from a Standard Object Record" / "Update a Record" (dome_update_fields.htm),
"Execute a SOQL Query" (resources_query.htm), "Composite" (resources_composite_composite_post.htm,
requests_composite.htm); Salesforce Help "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration"
(remoteaccess_oauth_client_credentials_flow.htm); Connect REST API quick start "Connect Using OAuth"):

- the org's My Domain URL (``https://<domain>.my.salesforce.com``) serves both the token endpoint and the REST API;
- ``POST /services/oauth2/token`` (form) ``grant_type=client_credentials&client_id&client_secret``: the external
  client app's (connected app's) run-as user; the answer ``{access_token, instance_url, id, token_type, issued_at
  (ms), signature, scope}`` carries no ``expires_in``: the token lives as long as the org's session timeout, so it
  is cached for SALESFORCE_SESSION_SECONDS less a margin, and bought again once when the API answers 401
  ``INVALID_SESSION_ID``. ``instance_url`` is not followed: the API is called on the configured My Domain only;
- ``GET /services/data/vXX.X/sobjects/Case/{id}``: every field of the case by API name (custom ones end ``__c``),
  with ``attributes``; then ``GET /sobjects/Contact/{ContactId}?fields=Name,Email`` for its contact;
- ``POST /services/data/vXX.X/composite`` ``{"allOrNone": true, "compositeRequest": [{method, url, referenceId,
  body}]}``: one API call for the write-back, the case's refund status field (``PATCH /sobjects/Case/{id}``, 204)
  and a private comment (``POST /sobjects/CaseComment`` ``{ParentId, CommentBody, IsPublished: false}``, 201); the
  customer's message is a published comment alone (``IsPublished: true``: "visible to customers in the Self-Service
  portal", Object Reference, CaseComment; the org's case comment notification to contacts e-mails it). The
  call answers 200 whatever happened; each subrequest has its ``httpStatusCode`` and ``body``; with allOrNone, a
  failed subrequest rolls every other back (those answer ``PROCESSING_HALTED``);
- ``GET /services/data/vXX.X/query?q=SELECT Id, CommentBody FROM CaseComment WHERE ParentId = '<id>' ...``: the
  case's comments, ``nextRecordsUrl`` while ``done`` is false; literals escaped as SOQL documents (backslash and
  single quote);
- errors ``[{"message", "errorCode", "fields"}]``: 401 ``INVALID_SESSION_ID``, 403 ``REQUEST_LIMIT_EXCEEDED`` when
  the org's API allowance (a rolling 24 hours) is spent (no Retry-After is documented: one is honoured when sent,
  else LIMIT_RETRY_SECONDS), 404 ``NOT_FOUND``, 400 ``INVALID_FIELD`` / ``MALFORMED_ID`` /
  ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``..., 503 when the server is unavailable.

Case ids are validated (15 or 18 characters, Case key prefix, checksum: ``ids``) before they reach a path or a
query. Nothing makes a comment idempotent: ``has_update`` finds a comment whose answer was lost before the
write-back is sent again, and the composite write is atomic, so either both parts are on the case or neither.
"""

from __future__ import annotations

import json as jsonlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import (
    HttpClient,
    HttpResponse,
    missing,
    oauth_error_words,
    retry_after_seconds,
    status_failure,
)
from refundflow.connectors.oauth_tokens import CachedTokenSource, send_with_token, token_endpoint_failure
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.platforms.salesforce.ids import case_id18, record_id18
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "salesforce"
DEFAULT_INSTANCE_URL = "https://example.my.salesforce.com"
DEFAULT_API_VERSION = "67.0"
DEFAULT_STATUS_FIELD = "Refund_Status__c"
# The shortest session timeout an org can set is 15 minutes; an org's own may be longer (SALESFORCE_SESSION_SECONDS).
DEFAULT_SESSION_SECONDS = 900
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
LIMIT_RETRY_SECONDS = 900.0  # the allowance is a rolling 24 hours: capacity comes back call by call
MAX_COMMENT_PAGES = 10
MAX_COMMENT_BYTES = 4000
API_VERSION = re.compile(r"[1-9][0-9]\.0")
CUSTOM_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}__c")
CONTACT_PREFIX = "003"


class SalesforceTokenSource(CachedTokenSource):
    """Access tokens of the client credentials flow for one external client app, cached until shortly before the
    org's session timeout ends (the token answer names no lifetime)."""

    def __init__(
        self,
        http: HttpClient,
        *,
        client_id: str,
        client_secret: str,
        session_seconds: float = DEFAULT_SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        super().__init__(clock=clock, expiry_margin_seconds=expiry_margin_seconds)
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        # At least a second of use, however short the org's session timeout.
        self._lifetime = max(float(session_seconds), expiry_margin_seconds + 1.0)

    def _fetch(self) -> tuple[str, float]:
        """Raises:
        TransientError: the token endpoint could not answer now (``salesforce_identity_unavailable``).
        RejectedError: the app's credentials were refused (``salesforce_credentials``)."""
        response = self._http.request(
            "POST",
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            headers={"Accept": "application/json"},
        )
        if response.status != 200:
            words = oauth_error_words(response)
            raise token_endpoint_failure(
                response,
                platform=PLATFORM,
                unavailable=f"Salesforce's token endpoint is unavailable ({words})",
                unavailable_code="salesforce_identity_unavailable",
                refused=f"Salesforce refused the app's client credentials ({words}): check the My Domain URL, the "
                "consumer key and secret, and that the client credentials flow has a run-as user",
                refused_code="salesforce_credentials",
            )
        try:
            payload = response.json()
        except ValueError as error:
            raise TransientError("Salesforce answered the token request unreadably", platform=PLATFORM) from error
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise TransientError("Salesforce answered without an access token", platform=PLATFORM)
        return token, self._lifetime


class SalesforceTickets(TicketPlatform):
    name = PLATFORM

    def __init__(
        self,
        http: HttpClient,
        tokens: SalesforceTokenSource,
        *,
        api_version: str = DEFAULT_API_VERSION,
        status_field: str | None = DEFAULT_STATUS_FIELD,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.data_path = f"/services/data/v{api_version}"
        self.status_field = status_field

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The case as the API answers it, with its contact as ``requester`` (``id``, ``name``, ``email``) when it
        has one."""
        case_id = _id(ticket_id)
        response = self._call("GET", f"{self.data_path}/sobjects/Case/{case_id}")
        if not response.ok:
            self._fail(response, f"read case {ticket_id}", write=False)
        case = response.json()
        if not isinstance(case, dict):
            raise RejectedError(f"Salesforce answered case {ticket_id} with no record", platform=PLATFORM)
        contact_id = record_id18(str(case.get("ContactId") or ""), CONTACT_PREFIX)
        if contact_id is not None:
            contact = self._call(
                "GET", f"{self.data_path}/sobjects/Contact/{contact_id}", params={"fields": "Name,Email"}
            )
            if contact.ok and isinstance(contact.json(), dict):
                found = contact.json()
                case["requester"] = {"id": contact_id, "name": found.get("Name"), "email": found.get("Email")}
            elif contact.status != 404:  # a contact deleted since: the case is still read
                self._fail(contact, f"read the contact of case {ticket_id}", write=False)
        return case

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """The case's comments, oldest first, searched for ``marker``; ``nextRecordsUrl`` followed only below our
        own API path, at most MAX_COMMENT_PAGES pages."""
        case_id = _id(ticket_id)
        # The id is validated (letters and digits only) and escaped as a SOQL literal besides.
        where = f"WHERE ParentId = '{soql_literal(case_id)}' ORDER BY CreatedDate ASC"
        soql = f"SELECT Id, CommentBody FROM CaseComment {where}"  # noqa: S608 - SOQL, the literal escaped
        response = self._call("GET", f"{self.data_path}/query", params={"q": soql})
        for _ in range(MAX_COMMENT_PAGES):
            if not response.ok:
                self._fail(response, f"read the comments of case {ticket_id}", write=False)
            page = response.json()
            page = page if isinstance(page, dict) else {}
            records = [record for record in page.get("records") or [] if isinstance(record, dict)]
            if any(marker in str(record.get("CommentBody") or "") for record in records):
                return True
            following = page.get("nextRecordsUrl")
            if page.get("done", True) or not isinstance(following, str):
                return False
            if not following.startswith(f"{self.data_path}/query/") or ".." in following:
                return False
            response = self._call("GET", following)
        return False

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        """One composite call, all or none: the refund status field (when the update has a label and a field is
        configured), then the private comment that carries the marker; the customer's message is a published
        comment alone (it has no label)."""
        case_id = _id(ticket_id)
        subrequests: list[dict[str, Any]] = []
        if self.status_field and update.label:
            subrequests.append(
                {
                    "method": "PATCH",
                    "url": f"{self.data_path}/sobjects/Case/{case_id}",
                    "referenceId": "refundStatus",
                    "body": {self.status_field: update.label},
                }
            )
        subrequests.append(
            {
                "method": "POST",
                "url": f"{self.data_path}/sobjects/CaseComment",
                "referenceId": "refundComment",
                "body": {
                    "ParentId": case_id,
                    "CommentBody": _comment_body(update.text, update.marker),
                    # Published: the customer's message, visible to the case's contact (the portal, and the
                    # org's case comment notification to contacts); otherwise a private comment for agents.
                    "IsPublished": update.kind == "public_reply",
                },
            }
        )
        body = {"allOrNone": True, "compositeRequest": subrequests}
        response = self._call("POST", f"{self.data_path}/composite", json=body)
        what = f"write the refund update to case {ticket_id}"
        if not response.ok:
            self._fail(response, what, write=True)
        payload = response.json()
        results = payload.get("compositeResponse") if isinstance(payload, dict) else None
        if not isinstance(results, list) or len(results) != len(subrequests):
            raise RejectedError(f"Salesforce could not {what}: an unreadable composite answer", platform=PLATFORM)
        if not all(isinstance(result, dict) for result in results):
            raise RejectedError(f"Salesforce could not {what}: an unreadable composite answer", platform=PLATFORM)
        failed = [result for result in results if not 200 <= int(result.get("httpStatusCode") or 0) < 300]
        if failed:
            halted = [result for result in failed if _codes(result.get("body")) == ["PROCESSING_HALTED"]]
            cause = next((result for result in failed if result not in halted), failed[0])
            self._fail(_as_response(cause), what, write=True)

    def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None
    ) -> HttpResponse:
        """One API call with the cached token; a 401 buys a new token once and repeats the call."""
        return send_with_token(
            self.tokens,
            lambda token: self.http.request(
                method, path, params=params, json=json, headers={"Authorization": f"Bearer {token}"}
            ),
        )

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        errors = _errors(response)
        codes = [str(error.get("errorCode") or "") for error in errors]
        words = "; ".join(
            f"{error.get('errorCode', '')}: {error.get('message', '')}"
            + (f" ({', '.join(map(str, error['fields']))})" if error.get("fields") else "")
            for error in errors
        )[:300]
        message = f"Salesforce could not {what}: {response.status} {words}".strip()
        if "REQUEST_LIMIT_EXCEEDED" in codes:
            stated = retry_after_seconds(response)
            raise TransientError(
                message,
                code="rate_limited",
                platform=PLATFORM,
                retry_after_seconds=stated if stated is not None and stated > 0 else LIMIT_RETRY_SECONDS,
            )
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        parent_gone = any(
            error.get("errorCode") == "INVALID_CROSS_REFERENCE_KEY" and "ParentId" in (error.get("fields") or [])
            for error in errors
        )  # a comment whose case is gone (a note-only write-back has no case update to answer 404)
        if response.status == 404 or "ENTITY_IS_DELETED" in codes or parent_gone:
            raise missing(message, platform=PLATFORM, write=False)  # the case is gone, on a read or a write
        code = re.sub(r"[^a-z0-9_]", "", (codes[0] if codes and codes[0] else str(response.status)).lower())
        raise RejectedError(message, code=f"salesforce_{code}"[:60], platform=PLATFORM)


def _comment_body(text: str, marker: str) -> str:
    """At most MAX_COMMENT_BYTES of UTF-8 (CaseComment.CommentBody: "The maximum size of the comment body is 4,000
    bytes", Object Reference, CaseComment): a longer text (2,000 characters of a wide script) is cut on a character
    boundary and keeps its marker at the end, which ``has_update`` looks for."""
    if len(text.encode()) <= MAX_COMMENT_BYTES:
        return text
    tail = f"... [{marker}]"
    head = text.replace(f"[{marker}]", "").encode()[: MAX_COMMENT_BYTES - len(tail.encode())]
    return head.decode("utf-8", "ignore").rstrip() + tail


def soql_literal(value: str) -> str:
    """A value for a single-quoted SOQL string literal: backslash and quote escaped (SOQL and SOSL Reference,
    "Quoted String Escape Sequences"); line breaks as their escapes."""
    return (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )


def _errors(response: HttpResponse) -> list[dict[str, Any]]:
    try:
        body = response.json() if response.body.lstrip()[:1] in (b"[", b"{") else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        body = [body]
    return [error for error in body or [] if isinstance(error, dict)]


def _codes(body: Any) -> list[str]:
    return (
        [str(error.get("errorCode")) for error in body or [] if isinstance(error, dict)]
        if isinstance(body, list)
        else []
    )


def _as_response(result: Mapping[str, Any]) -> HttpResponse:
    """A composite subrequest's result as the answer it stands for."""
    headers = {str(key): str(value) for key, value in (result.get("httpHeaders") or {}).items()}
    return HttpResponse(
        status=int(result.get("httpStatusCode") or 500),
        headers=headers,
        body=jsonlib.dumps(result.get("body")).encode(),
    )


def _id(ticket_id: str) -> str:
    case_id = case_id18(ticket_id) if isinstance(ticket_id, str) else None
    if case_id is None:
        raise RejectedError(f"not a Salesforce Case id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return case_id


class SalesforceSettings(settings.EnvModel):
    """Salesforce's own settings (its catalog entry's ``settings``, set on its function only)."""

    instance_url: str = Field(default=DEFAULT_INSTANCE_URL, alias="SALESFORCE_INSTANCE_URL")
    api_version: str = Field(default=DEFAULT_API_VERSION, alias="SALESFORCE_API_VERSION")
    status_field: str = Field(default=DEFAULT_STATUS_FIELD, alias="SALESFORCE_REFUND_STATUS_FIELD")
    session_seconds: int = Field(default=DEFAULT_SESSION_SECONDS, alias="SALESFORCE_SESSION_SECONDS")


def _build(config: SalesforceSettings, name: str, secret: Mapping[str, Any]) -> SalesforceTickets:
    """From SALESFORCE_INSTANCE_URL (My Domain), SALESFORCE_API_VERSION, SALESFORCE_REFUND_STATUS_FIELD,
    SALESFORCE_SESSION_SECONDS and the API secret ``{"client_id": ..., "client_secret": ...}``.

    Raises:
        ConfigurationError: a secret of another shape, or settings Salesforce would refuse.
    """
    client_id, client_secret = secret.get("client_id"), secret.get("client_secret")
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigurationError(f"secret {name}: client_id must be set (the app's consumer key)", platform=PLATFORM)
    if not isinstance(client_secret, str) or not client_secret.strip():
        raise ConfigurationError(f"secret {name}: client_secret must be set", platform=PLATFORM)
    version = config.api_version.strip().lstrip("v")
    if not API_VERSION.fullmatch(version):
        raise ConfigurationError("SALESFORCE_API_VERSION must be a REST API version such as 67.0", platform=PLATFORM)
    status_field = config.status_field.strip()
    if status_field and not CUSTOM_FIELD.fullmatch(status_field):
        raise ConfigurationError(
            "SALESFORCE_REFUND_STATUS_FIELD must be a custom field's API name (...__c), or empty", platform=PLATFORM
        )
    if config.session_seconds < 120:
        raise ConfigurationError("SALESFORCE_SESSION_SECONDS must be at least 120", platform=PLATFORM)
    http = HttpClient(platform=PLATFORM, base_url=config.instance_url, default_headers={"Accept": "application/json"})
    tokens = SalesforceTokenSource(
        http, client_id=client_id.strip(), client_secret=client_secret.strip(), session_seconds=config.session_seconds
    )
    return SalesforceTickets(http, tokens, api_version=version, status_field=status_field or None)


connector: SecretBoundConnector[SalesforceSettings, SalesforceTickets] = SecretBoundConnector(
    PLATFORM, SalesforceSettings, _build
)
"""The process's SalesforceTickets, built from SalesforceSettings and its API secret (``<SecretsPrefix>salesforce``)."""
