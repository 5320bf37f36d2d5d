"""Secrets from Secrets Manager through Powertools parameters (cached; never logged). No model imported: the
request intake reads its secret through here (README, Cost per refund, "Cold import")."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities import parameters

from refundflow import environment
from refundflow.adapters.aws import client
from refundflow.errors import ConfigurationError

# How long a secret read is kept (a revoked secret stops working within this, without a cold start).
SECRETS_CACHE_SECONDS = "SECRETS_CACHE_SECONDS"


def get_json_secret(name: str, *, force_fetch: bool = False) -> dict[str, Any]:
    """The secret ``name`` parsed as a JSON object, cached for SECRETS_CACHE_SECONDS.

    Raises:
        ConfigurationError: the secret is missing or not a JSON object.
    """
    max_age = environment.integer(SECRETS_CACHE_SECONDS, 300, minimum=0)
    try:
        value = parameters.get_secret(name, transform="json", max_age=max_age, force_fetch=force_fetch)
    except parameters.exceptions.GetParameterError as error:
        raise ConfigurationError(f"secret {name} could not be read") from error
    except parameters.exceptions.TransformParameterError as error:
        raise ConfigurationError(f"secret {name} is not JSON") from error
    if not isinstance(value, dict):
        raise ConfigurationError(f"secret {name} is not a JSON object")
    return value


def put_json_secret(name: str, value: dict[str, Any]) -> None:
    """Store a new version of a JSON secret (rotated OAuth refresh tokens), then refresh the cache."""
    client("secretsmanager").put_secret_value(SecretId=name, SecretString=json.dumps(value))
    parameters.get_secret(name, transform="json", force_fetch=True)


def platform_secret_name(platform: str, *, verification: bool = False) -> str:
    """The name of a platform's secret, by the catalog's convention: ``<SecretsPrefix><name>`` for its API
    credentials (its own function only), ``<SecretsPrefix>webhooks/<name>`` for webhook verification
    (intake only).

    Raises:
        ConfigurationError: SECRETS_PREFIX is not set; not a platform of the catalog.
    """
    from refundflow import catalog

    entry = catalog.platform(platform)
    prefix = environment.text("SECRETS_PREFIX")
    return entry.verification_secret_name(prefix) if verification else entry.api_secret_name(prefix)
