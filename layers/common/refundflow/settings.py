"""Settings from the environment, parsed once per model at first use. Nothing else reads os.environ."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refundflow.errors import ConfigurationError


class EnvModel(BaseModel):
    """A group of settings; field aliases are the environment variable names."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="ignore", populate_by_name=True)


class CoreSettings(EnvModel):
    refunds_table_name: str = Field(alias="REFUNDS_TABLE_NAME")
    event_bus_name: str = Field(default="refunds", alias="EVENT_BUS_NAME")


class EventSettings(EnvModel):
    """PublishAllStatusEvents: every status event on the bus, for a merchant's own rules (default: only the events
    a rule of the stack routes, see refundflow.events.is_consumed)."""

    publish_all_status_events: bool = Field(default=False, alias="PUBLISH_ALL_STATUS_EVENTS")


class MetricsSettings(EnvModel):
    # Powertools' own switch; when set, metrics are not even collected (its buffer would never flush).
    metrics_disabled: bool = Field(default=False, alias="POWERTOOLS_METRICS_DISABLED")


class IntakeSettings(EnvModel):
    refund_workflow_arn: str = Field(alias="REFUND_WORKFLOW_ARN")
    refund_requests_secret_name: str = Field(alias="REFUND_REQUESTS_SECRET_NAME")
    delivery_failures_secret_name: str = Field(default="", alias="DELIVERY_FAILURES_SECRET_NAME")
    max_body_bytes: int = Field(default=65_536, alias="MAX_WEBHOOK_BODY_BYTES")


class WorkflowTimingSettings(EnvModel):
    """The Standard workflow's waits; passed in each execution's input."""

    refund_outcome_wait_seconds: int = Field(default=3600, ge=1, alias="REFUND_OUTCOME_WAIT_SECONDS")
    books_retry_wait_seconds: int = Field(default=900, ge=1, alias="BOOKS_RETRY_WAIT_SECONDS")
    approval_escalation_seconds: int = Field(default=86_400, ge=1, alias="APPROVAL_ESCALATION_SECONDS")
    # How long a refund waits for its return (AWAITING_RETURN) before it is rejected (return_not_received).
    return_wait_seconds: int = Field(default=2_592_000, ge=1, le=31_536_000, alias="RETURN_WAIT_SECONDS")


class FailureSettings(EnvModel):
    max_books_attempts: int = Field(default=96, ge=1, alias="MAX_BOOKS_ATTEMPTS")
    # Payment look-ups that found the provider unreachable, BooksRetryWaitSeconds apart, before FAILED.
    max_lookup_attempts: int = Field(default=24, ge=1, alias="MAX_LOOKUP_ATTEMPTS")


class IdempotencySettings(EnvModel):
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME")


class AuditSettings(EnvModel):
    """The Secrets Manager secret holding the audit chain's MAC keys (refundflow.audit.AuditKeys)."""

    audit_key_secret_name: str = Field(alias="AUDIT_KEY_SECRET_NAME")


class ConnectorSettings(EnvModel):
    connect_timeout_seconds: float = Field(default=3.05, alias="CONNECTOR_CONNECT_TIMEOUT_SECONDS")
    # Worst case per call: (connect + read) x (1 + retries) + backoff, well inside the 60 s Lambda timeout.
    read_timeout_seconds: float = Field(default=10.0, alias="CONNECTOR_READ_TIMEOUT_SECONDS")
    max_network_retries: int = Field(default=1, alias="CONNECTOR_MAX_NETWORK_RETRIES")


class PlatformSettings(EnvModel):
    """Where the platforms' functions are (intake forwards news to them). Their secrets: adapters.secrets."""

    # "<stack>-": a platform's functions are <prefix>refund-<name> and <prefix>books-<name>.
    platform_function_prefix: str = Field(alias="PLATFORM_FUNCTION_PREFIX")


class TicketSettings(EnvModel):
    """A help desk's function: where the merchant's ticket mapping is, when not the packaged one."""

    mapping_parameter_prefix: str = Field(default="", alias="TICKET_MAPPING_PARAMETER_PREFIX")
    mapping_cache_seconds: int = Field(default=300, ge=0, le=86_400, alias="TICKET_MAPPING_CACHE_SECONDS")


def own_platform() -> str:
    """The catalog name of the platform a platform function serves (its ``PLATFORM`` variable). Read once, when
    the handler module loads, and not cached here: the local stack runs every platform's function in one process.

    Raises:
        ConfigurationError: PLATFORM is not set (not a platform function).
    """
    value = os.environ.get("PLATFORM", "")
    if not value:
        raise ConfigurationError("PLATFORM is not set: only a platform function knows its platform")
    return value


class ExternalRefundSettings(EnvModel):
    """What becomes of a refund made outside refundflow (a provider's dashboard) once recorded: ``credit_note``
    books it (the invoice of refundflow's own earlier refund of the payment), ``none`` leaves the books alone."""

    booking: Literal["credit_note", "none"] = Field(default="credit_note", alias="EXTERNAL_REFUND_BOOKING")


class ApprovalSettings(EnvModel):
    """Where the approver's role (and an optional refund binding) sit in the JWT's claims."""

    role_claim: str = Field(default="refundflow:role", alias="APPROVER_ROLE_CLAIM")
    refund_claim: str = Field(default="refundflow:refund_id", alias="APPROVER_REFUND_CLAIM")


class NotifySettings(EnvModel):
    sender_email: str = Field(alias="NOTIFY_SENDER_EMAIL")
    template_prefix: str = Field(default="refundflow", alias="NOTIFY_TEMPLATE_PREFIX")
    ops_email: str | None = Field(default=None, alias="NOTIFY_OPS_EMAIL")
    email_configuration_set: str | None = Field(default=None, alias="NOTIFY_CONFIGURATION_SET")
    customer_queue_arn: str | None = Field(default=None, alias="CUSTOMER_NOTIFICATIONS_QUEUE_ARN")
    ops_queue_arn: str | None = Field(default=None, alias="OPS_NOTIFICATIONS_QUEUE_ARN")
    merchant_webhook_url: str = Field(
        default="",
        alias="MERCHANT_WEBHOOK_URL",
        description="The merchant's endpoint for refund messages (Standard Webhooks); empty: e-mail the customer.",
    )
    merchant_webhook_secret_name: str = Field(default="", alias="MERCHANT_WEBHOOK_SECRET_NAME")
    merchant_webhook_sources: str = Field(
        default="*",
        alias="MERCHANT_WEBHOOK_SOURCES",
        description="Comma-separated source systems whose refunds the merchant's system tells its customers about; "
        "* for all.",
    )


M = TypeVar("M", bound=EnvModel)


@cache
def load(model: type[M]) -> M:
    """Parse ``model`` from the environment once (call ``load.cache_clear()`` in tests).

    Raises:
        ConfigurationError: a required variable is missing or malformed.
    """
    try:
        return model.model_validate(dict(os.environ))
    except ValidationError as error:
        missing = ", ".join(
            str(model.model_fields[str(err["loc"][0])].alias or err["loc"][0])
            if err["loc"] and str(err["loc"][0]) in model.model_fields
            else str(err["loc"])
            for err in error.errors()
        )
        raise ConfigurationError(f"{model.__name__}: invalid or missing {missing}") from error
