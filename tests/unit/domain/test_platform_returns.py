"""Returns news from a books platform that keeps the return (SAP's customer return): the platform's function reads
the return and records the step it reached for the refund it names, once, through the return's lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime

from refundflow.domain.returns import apply_return_news
from refundflow.models import ReturnStatus
from refundflow.ports import PlatformReturn, ReturnNews, ReturnsReader
from tests.support.fakes import World, refund_request_body

AT = datetime(2026, 12, 6, 9, 15, 2, tzinfo=UTC)


class Returns(ReturnsReader):
    """The platform's customer returns as its API would answer."""

    def __init__(self, *found: PlatformReturn) -> None:
        self.found = {item.return_id: item for item in found}
        self.reads: list[str] = []

    def read_return(self, return_id: str) -> PlatformReturn:
        self.reads.append(return_id)
        return self.found[return_id]


def news(event_id: str = "evt-1", return_id: str = "60100001") -> ReturnNews:
    return ReturnNews(platform="sap", event_id=event_id, return_id=return_id, event_type="CustomerReturn.Changed")


def updates(env: World, refund_id: str) -> list[tuple[str, str]]:
    return [
        (entry.actor, str(entry.details["status"]))
        for entry in env.repository.timeline(refund_id)
        if entry.type == "ReturnUpdated"
    ]


def test_the_step_the_return_reached_is_recorded_once_for_the_refund_it_names(env: World) -> None:
    refund_id = env.accept(refund_request_body()).refund.refund_id
    reader = Returns(
        PlatformReturn(return_id="60100001", refund_id=refund_id, status=ReturnStatus.RECEIVED, occurred_at=AT)
    )
    first = apply_return_news(news(), reader=reader, recorder=env.recorder, callbacks=env.callbacks)
    again = apply_return_news(news("evt-2"), reader=reader, recorder=env.recorder, callbacks=env.callbacks)
    assert first is not None
    assert again is not None
    assert (first.refund_id, first.lifecycle.status, first.duplicate) == (refund_id, ReturnStatus.RECEIVED, False)
    assert again.duplicate is True
    assert updates(env, refund_id) == [("returns:sap", "received")]
    assert reader.reads == ["60100001", "60100001"]  # the news is never believed: the return is read each time
    steps = env.repository.return_steps(refund_id)
    assert [(step.status, step.source, step.occurred_at) for step in steps if step.source == "sap"] == [
        (ReturnStatus.RECEIVED, "sap", AT)
    ]


def test_a_return_naming_no_refund_or_not_received_records_nothing(env: World) -> None:
    refund_id = env.accept(refund_request_body()).refund.refund_id
    reader = Returns(
        PlatformReturn(return_id="1", refund_id=None, status=ReturnStatus.RECEIVED, occurred_at=AT),
        PlatformReturn(return_id="2", refund_id=refund_id, status=None, occurred_at=AT),
    )
    for return_id in ("1", "2"):
        recorded = apply_return_news(
            news(return_id=return_id), reader=reader, recorder=env.recorder, callbacks=env.callbacks
        )
        assert recorded is None
    assert updates(env, refund_id) == []
    assert [step.source for step in env.repository.return_steps(refund_id) if step.source == "sap"] == []
