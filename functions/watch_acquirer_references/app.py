"""Runs on a schedule (``AcquirerReferenceWatchRate``): the completed refunds whose acquirer reference (ARN) has not
come yet are read again, each by its own payment platform's function (``read_acquirer_reference``), which records
the ARN once, or once the cut-off has passed, why there is none (refundflow.domain.acquirer_references)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings, wiring
from refundflow.adapters.payment_functions import PaymentFunctions
from refundflow.domain.acquirer_references import READ_ACQUIRER_REFERENCE, watch
from refundflow.observability import logger, tracer
from refundflow.ports import AwaitedReference


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    functions = PaymentFunctions(settings.load(settings.PlatformSettings).platform_function_prefix)

    def read(awaited: AwaitedReference) -> None:
        functions.run(awaited.provider, READ_ACQUIRER_REFERENCE, awaited.refund_id)

    return watch(wiring.repository(), read, now=lambda: datetime.now(UTC))
