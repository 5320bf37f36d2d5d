"""Cached factories for the adapters a handler needs: built on first use, once per process.

Tests inject their own by calling ``reset()`` after changing the environment, or by passing ports to
the domain functions directly."""

from __future__ import annotations

from functools import cache

from refundflow import settings
from refundflow.adapters.dynamodb import RefundRepository
from refundflow.adapters.eventbridge import EventBridgePublisher
from refundflow.adapters.ses import SesMailer
from refundflow.adapters.stepfunctions import StepFunctionsCallbacks, StepFunctionsWorkflow
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import ConfigurationError
from refundflow.models import BooksSystem
from refundflow.ports import BooksConnector


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


def books_for(system: BooksSystem) -> BooksConnector:
    """The books connector for ``system``.

    Raises:
        ConfigurationError: no connector for that books system in this release.
    """
    if system is BooksSystem.XERO:
        from refundflow.connectors.xero import xero_books

        return xero_books()
    raise ConfigurationError(f"no books connector for {system}")


def reset() -> None:
    """Forget every cached adapter and setting (tests, and the local stack after reconfiguring)."""
    for factory in (repository, recorder, workflow, callbacks, mailer):
        factory.cache_clear()
    settings.load.cache_clear()
