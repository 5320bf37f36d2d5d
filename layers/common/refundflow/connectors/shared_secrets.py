"""Shared secrets a platform cannot sign with: the help desks whose automation sends a fixed header, token or
Basic password we gave it (Freshdesk, ServiceNow, Zoho CRM, Dynamics 365 Customer Service, a Salesforce callout or
Outbound Message). Several may be configured at once while one replaces another."""

from __future__ import annotations

import hmac
from typing import Any

MIN_SHARED_SECRET_LENGTH = 24  # a configured secret shorter than this is a mistake, never a match


def one_of(sent: str, configured: Any) -> bool:
    """Whether ``sent`` is one of the ``configured`` secrets (a list; anything else matches nothing), each compared
    in constant time, all of them whatever matched. A configured value that is not a string of at least
    MIN_SHARED_SECRET_LENGTH characters never matches."""
    if not isinstance(configured, list):
        return False
    given = sent.encode()
    results = [
        hmac.compare_digest(given, secret.encode())
        for secret in configured
        if isinstance(secret, str) and len(secret) >= MIN_SHARED_SECRET_LENGTH
    ]
    return any(results)
