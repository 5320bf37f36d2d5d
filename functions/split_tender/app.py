"""``<stack>-refund-split``: the platform steps of a split-tender refund (one with tenders), invoked by the
workflows' LookUpPayment, RefundWithProvider and PollRefundOutcome states as ``refund-<provider>`` is for a refund
of one payment (``StepResult.provider`` is ``split``). It reads each tender through that platform's own function,
divides the amount by the merchant's policy, credits store-credit legs to refundflow's ledger and starts each payment
leg's workflow; it holds no platform's credentials (refundflow.domain.split_tenders)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings, wiring
from refundflow.adapters.tenders import LambdaTenderReader
from refundflow.domain import split_tenders
from refundflow.domain.intake import timing_from
from refundflow.models import ProviderStepInput
from refundflow.observability import logger, metrics, tracer
from refundflow.policy import active_policy


def _reader() -> LambdaTenderReader:
    return LambdaTenderReader(settings.load(settings.PlatformSettings).platform_function_prefix)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = ProviderStepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id, operation=task.operation, platform="split")
    recorder = wiring.recorder()
    timing = timing_from(settings.load(settings.WorkflowTimingSettings))
    if task.operation == "look_up_payment":
        result = split_tenders.look_up_payment(
            task.refund_id, recorder=recorder, reader=_reader(), policy=active_policy().select().policy
        )
    elif task.operation == "refund":
        result = split_tenders.issue_refund(
            task.refund_id,
            recorder=recorder,
            reader=_reader(),
            starter=wiring.workflow(),
            timing=timing,
            policy=active_policy().select().policy,
            ledger=wiring.store_credit_ledger(),
        )
    else:
        result = split_tenders.poll_refund(
            task.refund_id,
            recorder=recorder,
            starter=wiring.workflow(),
            timing=timing,
            ledger=wiring.store_credit_ledger(),
        )
    return result.model_dump(mode="json")
