"""Intake refuses a help desk's verified delivery that carries card data, and still has the ticket told why: the
desk's function gets news with the refusal and none of the body (issue 10)."""

from __future__ import annotations

from typing import Any

import pytest

from refundflow.domain.inbound import forward_refusal
from refundflow.errors import CardDataRefused, InvalidRequest, TransientError
from refundflow.ports import InboundDelivery, NewsForwarder, ProviderEvent, TicketNews

CARD = "4111 1111 1111 1111"


class Forwarder(NewsForwarder):
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[tuple[str, TicketNews]] = []
        self.fail = fail

    def forward(self, platform: str, event: ProviderEvent | TicketNews) -> dict[str, Any]:
        assert isinstance(event, TicketNews)
        self.sent.append((platform, event))
        if self.fail is not None:
            raise self.fail
        return {}


def delivery() -> InboundDelivery:
    news = TicketNews(platform="intercom", event_id="notif_1", ticket_id="77", payload={"order": CARD})
    return InboundDelivery(tickets=[news])


def refused() -> CardDataRefused:
    return CardDataRefused("card data is never accepted", errors=[{"field": "order", "problem": "card number"}])


def test_the_desks_function_is_told_the_refusal_without_the_body() -> None:
    forwarder = Forwarder(fail=InvalidRequest("refused as told", code="card_data_refused"))
    # WHEN intake forwards the refusal (the function answers with it: expected, not an error here)
    forward_refusal(delivery(), refused(), platform="intercom", forwarder=forwarder)
    # THEN the news names the ticket and the refusal, and carries nothing of what was typed
    ((platform, news),) = forwarder.sent
    assert (platform, news.ticket_id, news.event_id, news.payload) == ("intercom", "77", "notif_1", {})
    assert news.refused is not None
    assert (news.refused["type"], news.refused["code"]) == ("CardDataRefused", "card_data_refused")
    assert news.refused["errors"] == [{"field": "order", "problem": "card number"}]
    assert CARD not in news.model_dump_json()


def test_a_function_that_cannot_be_reached_makes_the_delivery_come_again() -> None:
    forwarder = Forwarder(fail=TransientError("throttled"))
    with pytest.raises(TransientError):
        forward_refusal(delivery(), refused(), platform="intercom", forwarder=forwarder)
