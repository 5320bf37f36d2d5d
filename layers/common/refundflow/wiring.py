"""Cached factories for the adapters a handler needs: built on first use, once per process. Platforms come from
the catalog (``refundflow.platforms.<name>``), never from a list here.

Tests inject their own by calling ``reset()`` after changing the environment, or by passing ports to
the domain functions directly."""

from __future__ import annotations

from functools import cache

from refundflow import catalog, settings
from refundflow.adapters.dynamodb import RefundRepository
from refundflow.adapters.eventbridge import EventBridgePublisher
from refundflow.adapters.news import LambdaNewsForwarder
from refundflow.adapters.ses import SesMailer
from refundflow.adapters.stepfunctions import StepFunctionsCallbacks, StepFunctionsWorkflow
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import ConfigurationError, InvalidRequest
from refundflow.metering import BOOKS, PROVIDER, meter
from refundflow.ports import BooksConnector, RefundProvider


@cache
def repository() -> RefundRepository:
    return RefundRepository(settings.load(settings.CoreSettings).refunds_table_name)


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
    for factory in (repository, recorder, workflow, callbacks, mailer, news_forwarder):
        factory.cache_clear()
    settings.load.cache_clear()
