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
