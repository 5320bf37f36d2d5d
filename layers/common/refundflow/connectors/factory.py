"""The one way a platform's ``connector()`` is built: from its settings and its API secret, once per process,
and again when either changes.

The secret is read through the secrets cache on every call (SECRETS_CACHE_SECONDS), so a rotated or revoked
API key is used or refused without a cold start; the connector object itself (its HTTP session, its token
cache) is kept while nothing changed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from refundflow import settings
from refundflow.errors import ConfigurationError

Settings = TypeVar("Settings", bound=settings.EnvModel)
Connector = TypeVar("Connector")


class SecretBoundConnector(Generic[Settings, Connector]):
    """``connector = SecretBoundConnector("stripe", StripeSettings, build)``; ``connector()`` returns the
    process's connector, ``build(settings, secret_name, secret)`` making a new one (and raising
    ConfigurationError for a secret of another shape)."""

    def __init__(
        self,
        platform: str,
        settings_model: type[Settings],
        build: Callable[[Settings, str, Mapping[str, Any]], Connector],
    ) -> None:
        self.platform = platform
        self._settings_model = settings_model
        self._build = build
        self._lock = threading.Lock()
        self._built: tuple[str, Connector] | None = None

    def __call__(self) -> Connector:
        """Raises: ConfigurationError: missing settings, or a secret of another shape."""
        from refundflow.adapters.secrets import get_json_secret, platform_secret_name

        config = settings.load(self._settings_model)
        name = platform_secret_name(self.platform)
        secret = get_json_secret(name)
        version = hashlib.sha256(repr((config, name, sorted(secret.items()))).encode()).hexdigest()
        with self._lock:
            if self._built is None or self._built[0] != version:
                self._built = (version, self._build(config, name, secret))
            return self._built[1]

    def cache_clear(self) -> None:
        with self._lock:
            self._built = None


def bad_secret(name: str, why: str, *, platform: str) -> ConfigurationError:
    """The refusal of the API secret ``name`` (a secret of another shape), saying ``why``."""
    return ConfigurationError(f"secret {name}: {why}", platform=platform)


def secret_strings(secret: Mapping[str, Any], name: str, fields: tuple[str, ...], *, platform: str) -> tuple[str, ...]:
    """The secret's ``fields``, in order, each a non-empty string.

    Raises:
        ConfigurationError: one is not (the message names every field the secret needs:
            ``secret <name>: api_key and site must be non-empty strings``).
    """
    values = tuple(secret.get(field) for field in fields)
    if not all(isinstance(value, str) and value for value in values):
        if len(fields) == 1:
            raise bad_secret(name, f"{fields[0]} must be a non-empty string", platform=platform)
        named = ", ".join(fields[:-1]) + " and " + fields[-1]
        raise bad_secret(name, f"{named} must be non-empty strings", platform=platform)
    return tuple(str(value) for value in values)
