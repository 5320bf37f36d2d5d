"""refundflow's HTTP API as the CLI uses it: signed refund requests (Standard Webhooks, as a source system),
``GET /refunds/{id}`` and the traces with SigV4, approvals with a bearer token (minted by the local issuer on the
local stack)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from standardwebhooks.webhooks import Webhook

from refundflow_cli.errors import CliError, Exit, from_problem
from refundflow_cli.target import LOCAL_SOURCE, Target


class Api:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.timeout = target.settings.timeout

    @property
    def base(self) -> str:
        return self.target.api_url

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            response = requests.request(method, f"{self.base}{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise CliError(
                "api_unreachable", f"{what}: {self.base} unreachable ({type(error).__name__})", Exit.UNAVAILABLE
            ) from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise from_problem(response.status_code, body, what)
        return body

    # ------------------------------------------------------------------ refund requests (as a source system)

    def signing_secret(self, source: str) -> str:
        """The source's current signing secret: REFUNDFLOW_SIGNING_SECRET, else the stack's refund-request
        secret (readable on the local stack; on AWS only with secretsmanager:GetSecretValue on it)."""
        given = os.environ.get("REFUNDFLOW_SIGNING_SECRET")
        if given:
            return given
        name = self.target.parameter("RefundRequestsSecretName")
        sources = self.target.secret_document(name).get("sources", {})
        if source not in sources:
            known = ", ".join(sorted(sources)) or "none"
            raise CliError(
                "unknown_source",
                f"source system {source!r} has no signing secret in {name} (known: {known})",
                Exit.CONFIG,
            )
        return str(sources[source]["signing_secrets"][0])

    def default_source(self) -> str:
        if self.target.local:
            return LOCAL_SOURCE
        raise CliError("no_source", "which source system sends this? --source or REFUNDFLOW_SOURCE_SYSTEM", Exit.CONFIG)

    def request_refund(self, body: dict[str, Any], *, source: str, delivery_id: str | None = None) -> dict[str, Any]:
        raw = json.dumps(body, separators=(",", ":"))
        delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(self.signing_secret(source)).sign(delivery_id, at, raw),
        }
        accepted: dict[str, Any] = self._call(
            "POST", "/refund-requests", "refund request", data=raw.encode(), headers=headers
        )
        return accepted

    # ------------------------------------------------------------------ the status API (SigV4)

    def refund(self, refund_id: str) -> dict[str, Any]:
        url = f"{self.base}/refunds/{refund_id}"
        signed = AWSRequest(method="GET", url=url)
        SigV4Auth(self.target.credentials(), "execute-api", self.target.region).add_auth(signed)
        document: dict[str, Any] = self._call(
            "GET", f"/refunds/{refund_id}", f"refund {refund_id}", headers=dict(signed.headers)
        )
        return document

    def _signed_get(self, path: str, what: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``GET path`` signed with SigV4 (the query string is part of what is signed)."""
        prepared = requests.Request("GET", f"{self.base}{path}", params=params or {}).prepare()
        signed = AWSRequest(method="GET", url=str(prepared.url))
        SigV4Auth(self.target.credentials(), "execute-api", self.target.region).add_auth(signed)
        document: dict[str, Any] = self._call("GET", path, what, params=params, headers=dict(signed.headers))
        return document

    def refund_trace(self, refund_id: str) -> dict[str, Any]:
        return self._signed_get(f"/refunds/{refund_id}/trace", f"trace of {refund_id}")

    def payout_trace(self, payout_id: str, after: str | None = None) -> dict[str, Any]:
        params = {"after": after} if after else None
        return self._signed_get(f"/payouts/{quote(payout_id, safe='')}/trace", f"payout {payout_id}", params)

    def bank_line_trace(self, file: str, line: int, after: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"file": file, "line": line, **({"after": after} if after else {})}
        return self._signed_get("/bank-lines/trace", f"{file} line {line}", params)

    # ------------------------------------------------------------------ approvals (bearer token)

    def approver_token(self, approver: str | None) -> str:
        """REFUNDFLOW_TOKEN (your identity provider's JWT), else on the local stack one minted by its issuer
        for ``approver`` (``sub:role``)."""
        token = os.environ.get("REFUNDFLOW_TOKEN")
        if token:
            return token
        if not self.target.local:
            raise CliError("no_token", "an approver's bearer token is needed: set REFUNDFLOW_TOKEN", Exit.CONFIG)
        subject, _, role = (approver or "operator:team_lead").partition(":")
        if not subject or not role:
            raise CliError("bad_approver", f"--as takes SUBJECT:ROLE, got {approver!r}", Exit.USAGE)
        minted = self._call("POST", "/_local/issuer/token", "local issuer", json={"sub": subject, "role": role})
        return str(minted["access_token"])

    def decide(self, refund_id: str, decision: str, note: str | None, token: str) -> dict[str, Any]:
        body: dict[str, Any] = {"decision": decision}
        if note:
            body["note"] = note
        result: dict[str, Any] = self._call(
            "POST",
            f"/refunds/{refund_id}/approval",
            f"{decision} {refund_id}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        return result
