"""Inbound Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature), verified with the
``standardwebhooks`` package: HMAC-SHA256 over ``id.timestamp.body``, 5 minutes either way.

Every source system has its own signing secrets (several during rotation). A delivery is verified
against every configured source's secrets, and the source whose secret verified it is the delivery's
only trustworthy statement of where it came from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from refundflow.errors import AuthenticationFailed, ConfigurationError
from refundflow.sources import VerifiedSource

REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
# The same characters as a request's source.system (models.Identifier).
SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.:@+\-/#]{1,128}$")


@dataclass(frozen=True)
class VerifiedDelivery:
    delivery_id: str
    source: VerifiedSource


@dataclass(frozen=True)
class SigningSources:
    """The refund-request secret document: ``{"sources": {"<system>": {"signing_secrets": ["whsec_…"]}}}``."""

    secrets: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_secret(cls, name: str, document: Mapping[str, Any]) -> SigningSources:
        """Check the secret document ``name`` and keep its sources' secrets.

        Raises:
            ConfigurationError: the old single-list shape, an unknown key, no source, a source without
                secrets, a secret that is not ``whsec_`` + base64 of at least 24 bytes, or one secret
                configured for two sources (a delivery must name exactly one source).
        """
        if "signing_secrets" in document:
            raise ConfigurationError(
                f'secret {name}: the single "signing_secrets" list is no longer accepted; give each source system '
                'its own secrets: {"sources": {"<system>": {"signing_secrets": ["whsec_..."]}}}'
            )
        unknown = sorted(set(document) - {"sources"})
        if unknown:
            raise ConfigurationError(f"secret {name}: unknown key(s) {', '.join(unknown)} (expected only 'sources')")
        sources = document.get("sources")
        if not isinstance(sources, dict) or not sources:
            raise ConfigurationError(f'secret {name}: "sources" must be a non-empty object of source systems')
        configured: dict[str, tuple[str, ...]] = {}
        owner: dict[bytes, str] = {}
        for source, entry in sources.items():
            if not isinstance(source, str) or not SOURCE_NAME.match(source):
                raise ConfigurationError(f"secret {name}: {source!r} is not a valid source system name")
            where = f"secret {name}: source {source}"
            if not isinstance(entry, dict):
                raise ConfigurationError(f"{where}: must be an object with signing_secrets")
            extra = sorted(set(entry) - {"signing_secrets"})
            if extra:
                hint = (
                    " (what a source may assert is the policy's sources: section)"
                    if "may_assert_roles" in extra
                    else ""
                )
                raise ConfigurationError(f"{where}: unknown key(s) {', '.join(extra)}{hint}")
            values = entry.get("signing_secrets")
            if not isinstance(values, list) or not values or not all(isinstance(value, str) for value in values):
                raise ConfigurationError(f"{where}: signing_secrets must be a non-empty list of whsec_ secrets")
            for value in values:
                key = _secret_key(where, value)
                if key in owner and owner[key] != source:
                    raise ConfigurationError(f"{where}: shares a signing secret with source {owner[key]}")
                owner[key] = source
            configured[source] = tuple(values)
        return cls(secrets=configured)


def _secret_key(where: str, value: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret, refused when it is too short to be a key."""
    if not value.startswith(SECRET_PREFIX):
        raise ConfigurationError(f"{where}: a signing secret does not start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (ValueError, binascii.Error) as error:
        raise ConfigurationError(f"{where}: a signing secret is not base64 after {SECRET_PREFIX}") from error
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{where}: a signing secret has {len(key)} bytes, at least {MIN_SECRET_BYTES} are required"
        )
    return key


def verify_source_delivery(headers: Mapping[str, str], raw_body: bytes, sources: SigningSources) -> VerifiedDelivery:
    """Verify a delivery against every source's secrets; the delivery id and the source that signed it.

    N sources cost N HMACs over a body of at most 64 KiB: a few microseconds each.

    Raises:
        AuthenticationFailed: a header is missing, the timestamp is off by more than 5 minutes,
            or no source's secret matches.
        ConfigurationError: no source is configured.
    """
    if not sources.secrets:
        raise ConfigurationError("no source is configured for refund requests")
    failure: AuthenticationFailed | None = None
    for source, secrets in sources.secrets.items():
        try:
            delivery_id = verify_standard_webhook(headers, raw_body, secrets)
        except AuthenticationFailed as error:
            if error.code != "signature_invalid":
                raise  # missing headers or a stale timestamp: no other source's secret changes that
            failure = error
            continue
        return VerifiedDelivery(delivery_id=delivery_id, source=VerifiedSource(name=source))
    assert failure is not None
    raise failure


def verify_standard_webhook(headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str]) -> str:
    """Verify a delivery against any of ``secrets`` (several during rotation); returns its ``webhook-id``.

    Raises:
        AuthenticationFailed: a header is missing, the timestamp is off by more than 5 minutes,
            or no signature matches.
        ConfigurationError: no signing secret is configured.
    """
    if not secrets:
        raise ConfigurationError("no signing secret configured for refund requests")
    lowered = {key.lower(): value for key, value in headers.items()}
    missing = [name for name in REQUIRED_HEADERS if not lowered.get(name)]
    if missing:
        raise AuthenticationFailed(f"missing header(s): {', '.join(missing)}", code="signature_missing")
    verifiers = []
    for secret in secrets:
        try:
            verifiers.append(Webhook(secret))
        except (EmptyWebhookSecretError, ValueError, binascii.Error) as error:
            raise ConfigurationError("a configured signing secret is empty or not base64 (whsec_...)") from error
    problem = "no matching signature"
    if not _is_utf8(raw_body):
        return _verify_bytes(raw_body, lowered, secrets, verifiers[0])
    for verifier in verifiers:
        try:
            verifier.verify(raw_body, lowered, json_parse=False)
            return lowered["webhook-id"]
        except WebhookVerificationError as error:
            problem = str(error)
            if "timestamp" in problem.lower() or "signature headers" in problem.lower():
                break
        except (ValueError, binascii.Error, UnicodeDecodeError):
            problem = "malformed signature header or body"
    code = "timestamp_out_of_tolerance" if "timestamp" in problem.lower() else "signature_invalid"
    raise AuthenticationFailed(problem, code=code)


def _is_utf8(raw_body: bytes) -> bool:
    try:
        raw_body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _verify_bytes(raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], checker: Webhook) -> str:
    """The same scheme on the raw bytes of a body that is not UTF-8 (the package decodes the body first): a
    delivery its sender really signed is then refused as malformed (400), not as unsigned (401)."""
    try:
        checker.verify(b"", dict(headers), json_parse=False)  # the package's header and timestamp checks
    except WebhookVerificationError as error:
        if "timestamp" in str(error).lower() or "signature headers" in str(error).lower():
            code = "timestamp_out_of_tolerance" if "timestamp" in str(error).lower() else "signature_invalid"
            raise AuthenticationFailed(str(error), code=code) from error
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw_body
    expected = [
        hmac.new(base64.b64decode(secret.removeprefix(SECRET_PREFIX)), signed, hashlib.sha256).digest()
        for secret in secrets
    ]
    matched = False
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        try:
            given = base64.b64decode(signature, validate=True)
        except (ValueError, binascii.Error):
            continue
        for digest in expected:
            matched |= version == "v1" and hmac.compare_digest(digest, given)
    if not matched:
        raise AuthenticationFailed("no matching signature", code="signature_invalid")
    return headers["webhook-id"]
