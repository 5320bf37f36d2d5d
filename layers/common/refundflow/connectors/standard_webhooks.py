"""Inbound Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature), verified with the
``standardwebhooks`` package: HMAC-SHA256 over ``id.timestamp.body``, 5 minutes either way."""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from refundflow.errors import AuthenticationFailed, ConfigurationError

REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


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
