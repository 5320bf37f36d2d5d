"""The audit MAC keys from Secrets Manager, read through the shared secrets cache (one call per container per
SECRETS_CACHE_SECONDS, not one per entry: benchmarks/audit_mac.py compares this with KMS HMAC keys)."""

from __future__ import annotations

from refundflow import settings
from refundflow.adapters.secrets import get_json_secret
from refundflow.audit import AuditKeys


def audit_keys_from_secret() -> AuditKeys:
    """The keys in the secret named by AUDIT_KEY_SECRET_NAME.

    Raises:
        ConfigurationError: the setting or the secret is missing or malformed.
    """
    return AuditKeys.from_secret(get_json_secret(settings.load(settings.AuditSettings).audit_key_secret_name))
