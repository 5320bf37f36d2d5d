"""An integrator's view of the local stack, over HTTP only: sign and post refund requests, read refunds,
approve them with a locally minted JWT, and set up payments and invoices through the sandboxes' own
APIs (Stripe's /v1 with the sandbox key, Xero's accounting API with an OAuth2 token). The demo and the
end-to-end tests use it; nothing here reaches into the stack's memory."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook

from local.stack import CARRIER_SIGNING_SECRETS, SOURCE_SIGNING_SECRETS, platform_secrets
from refundflow.platforms.xero.connector import dump_json
from refundflow.status import TERMINAL_STATUSES

TERMINAL = {status.value for status in TERMINAL_STATUSES}
JSON = {"Content-Type": "application/json"}
DEFAULT_SOURCE = "returns-portal"


class RefundflowClient:
    def __init__(
        self,
        api_url: str,
        signing_secrets: Mapping[str, Sequence[str]] = SOURCE_SIGNING_SECRETS,
        timeout: float = 30,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # Each source system signs with its own (first, i.e. current) secret.
        self.webhooks = {source: Webhook(secrets[0]) for source, secrets in signing_secrets.items()}
        self.carriers = {carrier: Webhook(secrets[0]) for carrier, secrets in CARRIER_SIGNING_SECRETS.items()}
        self.http = requests  # no shared Session: scenarios run on several threads
        self.timeout = timeout
        self._xero_lock = threading.Lock()
        self._xero_refresh = str(platform_secrets("xero")["api"]["refresh_token"])
        self._xero_access: str | None = None

    # ------------------------------------------------------------------ refundflow's API

    def signed_headers(
        self, body: str, delivery_id: str | None = None, at: datetime | None = None, *, source: str | None = None
    ) -> dict[str, str]:
        """Standard Webhooks headers for ``body``, signed with the secret of ``source`` (by default the source
        system the body names, else the returns portal), as that source system would sign it."""
        delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        at = at or datetime.now(UTC)
        webhook = self.webhooks[source or self._named_source(body)]
        return {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": webhook.sign(delivery_id, at, body),
        }

    def _named_source(self, body: str) -> str:
        try:
            named = json.loads(body)["source"]["system"]
        except (ValueError, TypeError, KeyError):
            return DEFAULT_SOURCE
        return named if isinstance(named, str) and named in self.webhooks else DEFAULT_SOURCE

    def request_refund(
        self, request: dict[str, Any], *, delivery_id: str | None = None, source: str | None = None
    ) -> requests.Response:
        body = json.dumps(request)
        return self.http.post(
            f"{self.api_url}/refund-requests",
            data=body,
            headers=self.signed_headers(body, delivery_id, source=source),
            timeout=self.timeout,
        )

    def report_delivery_failure(
        self, report: dict[str, Any], *, delivery_id: str | None = None, carrier: str = "parcel-carrier"
    ) -> requests.Response:
        """``POST /triggers/delivery-failures`` signed with ``carrier``'s secret (a local carrier source)."""
        body = json.dumps(report)
        delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self.carriers[carrier].sign(delivery_id, at, body),
        }
        return self.http.post(
            f"{self.api_url}/triggers/delivery-failures", data=body, headers=headers, timeout=self.timeout
        )

    def report_return_update(
        self, update: dict[str, Any], *, delivery_id: str | None = None, source: str | None = None
    ) -> requests.Response:
        """``POST /triggers/return-updates``: a step of a return, signed like a refund request by its source."""
        body = json.dumps(update)
        return self.http.post(
            f"{self.api_url}/triggers/return-updates",
            data=body,
            headers=self.signed_headers(body, delivery_id, source=source),
            timeout=self.timeout,
        )

    def post_raw(self, path: str, body: bytes | str, headers: dict[str, str]) -> requests.Response:
        return self.http.post(f"{self.api_url}{path}", data=body, headers=headers, timeout=self.timeout)

    def refund(self, refund_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.api_url}/refunds/{refund_id}", timeout=self.timeout)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def trace(self, refund_id: str) -> dict[str, Any]:
        """``GET /refunds/{refund_id}/trace``: every hop from the ticket to the bank line, or why it is missing."""
        response = self.http.get(f"{self.api_url}/refunds/{refund_id}/trace", timeout=self.timeout)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def wait_for(self, refund_id: str, statuses: set[str], timeout: float = 45.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            refund = self.refund(refund_id)
            if refund["status"] in statuses:
                return refund
            if time.monotonic() > deadline:
                raise TimeoutError(f"{refund_id} is {refund['status']}, not {sorted(statuses)}, after {timeout}s")
            time.sleep(0.1)

    def approver_token(self, subject: str, role: str, *, refund_id: str | None = None, ttl_seconds: int = 900) -> str:
        payload: dict[str, Any] = {"sub": subject, "role": role, "ttl_seconds": ttl_seconds}
        if refund_id:
            payload["refund_id"] = refund_id
        response = self.http.post(f"{self.api_url}/_local/issuer/token", json=payload, timeout=self.timeout)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def decide(self, refund_id: str, token: str, decision: str, note: str | None = None) -> requests.Response:
        body: dict[str, Any] = {"decision": decision}
        if note:
            body["note"] = note
        return self.http.post(
            f"{self.api_url}/refunds/{refund_id}/approval",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self.timeout,
        )

    # ------------------------------------------------------------------ Stripe sandbox (Stripe's API)

    def stripe(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(
            method,
            f"{self.api_url}/_sandbox/stripe{path}",
            auth=(platform_secrets("stripe")["api"]["api_key"], ""),
            timeout=self.timeout,
            **kwargs,
        )

    def create_payment(self, minor_units: int, currency: str, payment_method: str = "pm_card_visa") -> str:
        response = self.stripe(
            "POST",
            "/v1/payment_intents",
            data={
                "amount": minor_units,
                "currency": currency.lower(),
                "confirm": "true",
                "payment_method": payment_method,
            },
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def stripe_refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        response = self.stripe("GET", "/v1/refunds", params={"payment_intent": payment_intent, "limit": 100})
        response.raise_for_status()
        refunds: list[dict[str, Any]] = response.json()["data"]
        return refunds

    def stripe_dashboard_refund(self, payment_intent: str, minor_units: int | None = None) -> dict[str, Any]:
        """A refund made by a person in the Stripe Dashboard, not by refundflow (the sandbox's control route)."""
        response = self.http.post(
            f"{self.api_url}/_sandbox/stripe/_control/dashboard-refunds",
            json={"payment_intent": payment_intent, "amount": minor_units},
            timeout=self.timeout,
        )
        response.raise_for_status()
        refund: dict[str, Any] = response.json()
        return refund

    # ------------------------------------------------------------------ Xero sandbox (Xero's API)

    def _xero_token(self, stale: str | None = None) -> str:
        """An access token (Xero rotates the refresh token on every use, so one refresh at a time)."""
        with self._xero_lock:
            if self._xero_access and self._xero_access != stale:
                return self._xero_access
            response = self.http.post(
                f"{self.api_url}/_sandbox/xero/identity/connect/token",
                data={"grant_type": "refresh_token", "refresh_token": self._xero_refresh},
                auth=(platform_secrets("xero")["api"]["client_id"], platform_secrets("xero")["api"]["client_secret"]),
                timeout=self.timeout,
            )
            response.raise_for_status()
            grant = response.json()
            self._xero_refresh = grant["refresh_token"]
            self._xero_access = str(grant["access_token"])
            return self._xero_access

    def xero(
        self, method: str, path: str, headers_extra: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        """Xero's accounting API; amounts go through the connector's exact serialiser (no floats)."""
        token = self._xero_token()
        for _ in range(2):
            headers = {
                "Authorization": f"Bearer {token}",
                "xero-tenant-id": platform_secrets("xero")["api"]["tenant_id"],
                "Accept": "application/json",
            }
            response = self.http.request(
                method,
                f"{self.api_url}/_sandbox/xero/api.xro/2.0{path}",
                headers={**headers, **(headers_extra or {})},
                timeout=self.timeout,
                **kwargs,
            )
            if response.status_code != 401:
                return response
            token = self._xero_token(stale=token)
        return response

    def create_invoice(
        self, customer: str, description: str, amount: Decimal, currency: str, *, paid: bool
    ) -> dict[str, Any]:
        """A sales invoice in Xero for ``amount`` (major units, tax inclusive), paid into account 090 if ``paid``."""
        contact = self.xero("PUT", "/Contacts", json={"Contacts": [{"Name": customer}]})
        contact.raise_for_status()
        contact_id = contact.json()["Contacts"][0]["ContactID"]
        invoice = {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact_id},
            "CurrencyCode": currency,
            "Status": "AUTHORISED",
            "LineAmountTypes": "Inclusive",
            "Date": datetime.now(UTC).date().isoformat(),
            "DueDate": datetime.now(UTC).date().isoformat(),
            "LineItems": [
                {
                    "Description": description,
                    "Quantity": 1,
                    "UnitAmount": amount,
                    "AccountCode": "200",
                    "TaxType": "OUTPUT2",
                }
            ],
        }
        created = self.xero("PUT", "/Invoices", data=dump_json({"Invoices": [invoice]}), headers_extra=JSON)
        created.raise_for_status()
        document: dict[str, Any] = created.json()["Invoices"][0]
        if paid:
            payment = {
                "Invoice": {"InvoiceID": document["InvoiceID"]},
                "Account": {"Code": "090"},
                "Amount": amount,
                "Date": datetime.now(UTC).date().isoformat(),
            }
            self.xero(
                "PUT", "/Payments", data=dump_json({"Payments": [payment]}), headers_extra=JSON
            ).raise_for_status()
        return document

    def credit_notes(self, refund_id: str) -> list[dict[str, Any]]:
        response = self.xero("GET", "/CreditNotes", params={"where": f'Reference.StartsWith("{refund_id}")'})
        response.raise_for_status()
        notes: list[dict[str, Any]] = response.json().get("CreditNotes", [])
        return notes
