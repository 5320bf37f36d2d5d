"""Cached factories for the adapters a handler needs: built on first use, once per process. Platforms come from
the catalog (``refundflow.platforms.<name>``), never from a list here.

Tests inject their own by calling ``reset()`` after changing the environment, or by passing ports to
the domain functions directly."""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from refundflow import catalog, settings
from refundflow.adapters.dynamodb import RefundRepository
from refundflow.adapters.eventbridge import EventBridgePublisher
from refundflow.adapters.news import LambdaNewsForwarder
from refundflow.adapters.ses import SesMailer
from refundflow.adapters.stepfunctions import StepFunctionsCallbacks, StepFunctionsWorkflow
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import ConfigurationError, InvalidRequest
from refundflow.metering import BOOKS, PROVIDER, meter
from refundflow.ports import (
    BooksConnector,
    PayoutReader,
    RefundProvider,
    ReturnsReader,
    StoreCreditLedger,
    TicketPlatform,
)

if TYPE_CHECKING:
    from refundflow.connectors.merchant_webhook import StandardWebhookSender
    from refundflow.domain.tickets import TicketMapping


@cache
def repository() -> RefundRepository:
    return RefundRepository(settings.load(settings.CoreSettings).refunds_table_name)


@cache
def store_credit_ledger() -> StoreCreditLedger:
    """refundflow's store-credit ledger on the refunds table (split refunds' store-credit legs)."""
    from refundflow.adapters.store_credit import DynamoStoreCreditLedger

    return DynamoStoreCreditLedger(settings.load(settings.CoreSettings).refunds_table_name)


@cache
def recorder() -> RefundRecorder:
    core = settings.load(settings.CoreSettings)
    return RefundRecorder(repository(), EventBridgePublisher(core.event_bus_name))


@cache
def workflow() -> StepFunctionsWorkflow:
    return StepFunctionsWorkflow(settings.load(settings.IntakeSettings).refund_workflow_arn)


@cache
def callbacks() -> StepFunctionsCallbacks:
    return StepFunctionsCallbacks()


@cache
def mailer() -> SesMailer:
    notify = settings.load(settings.NotifySettings)
    return SesMailer(
        notify.sender_email, template_prefix=notify.template_prefix, configuration_set=notify.email_configuration_set
    )


@cache
def merchant_webhook() -> StandardWebhookSender | None:
    """The merchant's outbound webhook when MERCHANT_WEBHOOK_URL is set (its secret read at the first send).

    Raises:
        ConfigurationError: a URL without MERCHANT_WEBHOOK_SECRET_NAME.
    """
    notify = settings.load(settings.NotifySettings)
    if not notify.merchant_webhook_url:
        return None
    if not notify.merchant_webhook_secret_name:
        raise ConfigurationError("MERCHANT_WEBHOOK_URL is set without MERCHANT_WEBHOOK_SECRET_NAME")
    # Imported here: only notify sends, and only when configured (requests stays out of the other functions).
    from refundflow.adapters.secrets import get_json_secret
    from refundflow.connectors.merchant_webhook import StandardWebhookSender

    name = notify.merchant_webhook_secret_name
    sources = {item.strip() for item in notify.merchant_webhook_sources.split(",") if item.strip()}
    return StandardWebhookSender(
        notify.merchant_webhook_url,
        lambda: get_json_secret(name),
        sources=None if "*" in sources else frozenset(sources),
    )


@cache
def news_forwarder() -> LambdaNewsForwarder:
    return LambdaNewsForwarder(settings.load(settings.PlatformSettings).platform_function_prefix)


def provider(name: str) -> RefundProvider:
    """The payment platform ``name``'s connector (its package's cached ``connector()``).

    Raises:
        UnsupportedProvider: not a payment platform of the catalog.
        ConfigurationError: its package does not provide a RefundProvider.
    """
    catalog.payment_platform(name)
    found = catalog.connector(name)
    if not isinstance(found, RefundProvider):
        raise ConfigurationError(f"refundflow.platforms.{name}.connector() is not a RefundProvider")
    return meter(found, PROVIDER, name)  # ProviderCalls/Errors/Latency per platform (the ops dashboard)


def payout_reader(name: str) -> PayoutReader | None:
    """The payment platform ``name``'s payouts, when its catalog entry has ``settlement_news`` (metered as its
    other provider calls); None otherwise.

    Raises:
        ConfigurationError: the entry says so but its connector cannot read payouts.
    """
    entry = catalog.payment_platform(name)
    if entry.payment is None or not entry.payment.settlement_news:
        return None
    found = catalog.connector(name)
    if not isinstance(found, PayoutReader):
        raise ConfigurationError(f"refundflow.platforms.{name}.connector() is not a PayoutReader")
    return meter(found, PROVIDER, name)


def books(name: str) -> BooksConnector:
    """The books platform ``name``'s connector.

    Raises:
        InvalidRequest: ``books_not_supported``, not a books platform of the catalog.
        ConfigurationError: its package does not provide a BooksConnector.
    """
    catalog.books_platform(name)
    found = catalog.connector(name)
    if not isinstance(found, BooksConnector):
        raise ConfigurationError(f"refundflow.platforms.{name}.connector() is not a BooksConnector")
    return meter(found, BOOKS, name)  # BooksCalls/Errors/Latency per platform


def returns_reader(name: str) -> ReturnsReader:
    """The books platform ``name``'s connector, reading the returns it keeps (its webhook's returns news).

    Raises:
        InvalidRequest: ``books_not_supported``, not a books platform of the catalog.
        ConfigurationError: its package's connector reads no returns.
    """
    catalog.books_platform(name)
    found = catalog.connector(name)
    if not isinstance(found, ReturnsReader):
        raise ConfigurationError(f"refundflow.platforms.{name}.connector() reads no returns (ReturnsReader)")
    return meter(found, BOOKS, name)


def ticket_platform(name: str) -> TicketPlatform:
    """The help desk ``name``'s connector.

    Raises:
        InvalidRequest: ``ticket_platform_not_supported``.
        ConfigurationError: its package does not provide a TicketPlatform.
    """
    catalog.ticket_platform(name)
    found = catalog.connector(name)
    if not isinstance(found, TicketPlatform):
        raise ConfigurationError(f"refundflow.platforms.{name}.connector() is not a TicketPlatform")
    return found


def ticket_mapping(name: str) -> TicketMapping:
    """The merchant's mapping of ``name``'s tickets: the SSM parameter ``<TICKET_MAPPING_PARAMETER_PREFIX><name>``
    when the prefix is set (YAML or JSON, cached like the policy), else the package's ``mapping.yaml``.

    Raises:
        InvalidRequest: ``invalid_ticket_mapping`` (a broken mapping is never used: the delivery fails 5xx
            through ConfigurationError and the help desk retries while ops fix it).
    """
    config = settings.load(settings.TicketSettings)
    if config.mapping_parameter_prefix:
        from aws_lambda_powertools.utilities import parameters

        source = f"{config.mapping_parameter_prefix}{name}"
        text = str(parameters.get_parameter(source, max_age=config.mapping_cache_seconds))
    else:
        source = f"refundflow.platforms.{name}/mapping.yaml"
        text = _packaged_mapping_text(name)
    return _parsed_mapping(text, source)


@cache
def _packaged_mapping_text(name: str) -> str:
    return resources.files(f"refundflow.platforms.{name}").joinpath("mapping.yaml").read_text(encoding="utf-8")


@lru_cache(maxsize=16)
def _parsed_mapping(text: str, source: str) -> TicketMapping:
    """A mapping's text parsed, validated and its expressions compiled once per process and version."""
    import yaml

    from refundflow.domain.tickets import load_mapping

    try:
        return load_mapping(yaml.safe_load(text), source=source)
    except (InvalidRequest, yaml.YAMLError) as error:
        raise ConfigurationError(f"the ticket mapping {source} is broken: {error}") from error


def ensure_own_platform(own: str, asked: str) -> None:
    """A platform function only acts for its own platform (a misrouted call is refused, not served with the
    wrong credentials).

    Raises:
        InvalidRequest: ``wrong_platform``.
    """
    if own != asked:
        raise InvalidRequest(f"this is {own}'s function, not {asked}'s", code="wrong_platform")


def reset() -> None:
    """Forget every cached adapter and setting (tests, and the local stack after reconfiguring)."""
    for factory in (
        repository,
        recorder,
        workflow,
        callbacks,
        mailer,
        merchant_webhook,
        news_forwarder,
        store_credit_ledger,
    ):
        factory.cache_clear()
    settings.load.cache_clear()
