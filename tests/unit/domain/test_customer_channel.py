"""The customer hears once per refund, through one channel: the ticket's public reply (a help desk that has one),
the merchant's webhook (where configured for the refund's source), or one SES e-mail."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from refundflow.domain.intake import accept_refund_request
from refundflow.domain.notifications import Channel, CustomerChannel, customer_channel, notify
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.tickets import write_back
from refundflow.domain.validation import validate_refund
from refundflow.errors import TransientError
from refundflow.events import RefundEvent
from refundflow.ports import MerchantWebhook, TicketPlatform, TicketUpdate, VerifiedSource
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import TIMING, World, refund_request_body, world

OPS = "ops@shop.example"
REPLY_DESKS = frozenset({"zendesk"})


class RecordingWebhook(MerchantWebhook):
    """The merchant's endpoint: every attempt (message id, body), the first ``failures`` refused."""

    def __init__(self, *, failures: int = 0, sources: frozenset[str] | None = None) -> None:
        self.attempts: list[tuple[str, dict[str, Any]]] = []
        self.taken: list[tuple[str, dict[str, Any]]] = []
        self.failures = failures
        self.sources = sources

    def takes(self, source_system: str) -> bool:
        return self.sources is None or source_system in self.sources

    def send(self, *, message_id: str, body: Mapping[str, Any]) -> None:
        self.attempts.append((message_id, dict(body)))
        if self.failures:
            self.failures -= 1
            raise TransientError("503 from the merchant", retry_after_seconds=30)
        self.taken.append((message_id, dict(body)))


class RecordingDesk(TicketPlatform):
    name = "zendesk"

    def __init__(self) -> None:
        self.updates: list[tuple[str, TicketUpdate]] = []

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        return {}

    def has_update(self, ticket_id: str, marker: str) -> bool:
        return any(update.marker == marker for _, update in self.updates)

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        self.updates.append((ticket_id, update))


@pytest.fixture
def env() -> Iterator[World]:
    with world() as env:
        env.provider.add_payment(PAYMENT, eur(10_000))
        yield env


def issued_refund(env: World, *, system: str = "returns-portal", channel: str = "refund-requests") -> str:
    """A refund of 25.00 EUR to Jane, asked for by ``system`` through ``channel`` (a help desk's name: its ticket
    4711), paid: its RefundIssued event is on the bus."""
    body = refund_request_body(
        payment_id=PAYMENT, source={"system": system, "reference": f"R-{system}", "ticket_id": "4711"}
    )
    refund_id = accept_refund_request(
        body,
        source=VerifiedSource(system),
        delivery_id=f"dlv-{system}",
        recorder=env.recorder,
        starter=env.starter,
        timing=TIMING,
        channel=channel,
    ).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


def event_of(env: World, refund_id: str, detail_type: str) -> RefundEvent:
    return next(e for e in env.publisher.events if e.refund_id == refund_id and e.detail_type == detail_type)


def later(env: World, refund_id: str, detail_type: str, status: RefundStatus, seq: int = 90) -> RefundEvent:
    """Another event of the refund (a second RefundIssued after attention, a RefundFailed, a RefundCompleted)."""
    issued = event_of(env, refund_id, "RefundIssued")
    return issued.model_copy(update={"event_id": f"{refund_id}#{seq}", "detail_type": detail_type, "status": status})


def tell(env: World, event: RefundEvent, webhook: MerchantWebhook | None = None) -> str | None:
    return notify(
        event,
        Channel.CUSTOMER,
        repository=env.repository,
        mailer=env.mailer,
        ops_email=OPS,
        webhook=webhook,
        reply_desks=REPLY_DESKS,
    )


def test_an_api_refund_without_a_webhook_gets_one_email_not_two(env: World) -> None:
    # GIVEN an API refund that was issued and then completed, and no merchant webhook
    refund_id = issued_refund(env)
    issued = event_of(env, refund_id, "RefundIssued")
    # WHEN its events reach the customer queue, each twice, and a second RefundIssued comes after attention
    for event in (issued, later(env, refund_id, "RefundCompleted", RefundStatus.COMPLETED), issued):
        tell(env, event)
    tell(env, later(env, refund_id, "RefundIssued", RefundStatus.REFUNDED, seq=91))
    # THEN one e-mail: "issued", to the refund's address, with the amount
    (mail,) = env.mailer.sent
    assert (mail["to"], mail["template"], mail["data"]["amount"]) == (
        "jane.doe@example.com",
        "refund-issued",
        "25.00 EUR",
    )
    assert mail["idempotency_key"] == f"{refund_id}:issued"


def test_a_refund_whose_source_has_the_merchant_webhook_is_posted_once_and_not_emailed(env: World) -> None:
    # GIVEN a merchant endpoint for the web shop's refunds, which refuses the first attempt
    webhook = RecordingWebhook(failures=1, sources=frozenset({"merchant-shop"}))
    refund_id = issued_refund(env, system="merchant-shop")
    issued = event_of(env, refund_id, "RefundIssued")
    # WHEN the queue delivers RefundIssued: refused, retried, then delivered again after success
    with pytest.raises(TransientError) as refused:
        tell(env, issued, webhook)
    assert refused.value.retry_after_seconds == 30
    assert tell(env, issued, webhook) == f"msg_{refund_id}_issued"
    assert tell(env, issued, webhook) is None
    # THEN every attempt carried the same message id and body; the merchant took one; no e-mail went out
    assert {message_id for message_id, _ in webhook.attempts} == {f"msg_{refund_id}_issued"}
    assert webhook.attempts[0][1] == webhook.attempts[1][1]
    ((_, body),) = webhook.taken
    assert body["type"] == "refund.issued"
    assert body["data"]["refund_id"] == refund_id
    assert body["data"]["amount"] == {"minor_units": 2_500, "currency": "EUR"}
    assert body["data"]["customer"]["email"] == "jane.doe@example.com"
    assert "25.00 EUR" in body["data"]["message"]
    assert env.mailer.sent == []


def test_a_source_the_webhook_does_not_take_is_emailed(env: World) -> None:
    webhook = RecordingWebhook(sources=frozenset({"merchant-shop"}))
    refund_id = issued_refund(env, system="returns-portal")
    tell(env, event_of(env, refund_id, "RefundIssued"), webhook)
    assert webhook.attempts == []
    assert [mail["template"] for mail in env.mailer.sent] == ["refund-issued"]


def test_a_refund_from_a_desk_with_a_public_reply_is_left_to_its_ticket(env: World) -> None:
    # GIVEN a refund from a Zendesk ticket (Zendesk has a public reply), and a merchant webhook for every source
    webhook = RecordingWebhook()
    refund_id = issued_refund(env, system="zendesk", channel="zendesk")
    refund = env.repository.get(refund_id)
    assert customer_channel(refund, reply_desks=REPLY_DESKS, webhook=webhook) is CustomerChannel.TICKET
    # WHEN notify gets its RefundIssued THEN it sends nothing: the desk's function replies in the ticket
    assert tell(env, event_of(env, refund_id, "RefundIssued"), webhook) is None
    assert (env.mailer.sent, webhook.attempts) == ([], [])


def test_a_refund_from_a_desk_without_a_public_reply_falls_back_to_email(env: World) -> None:
    refund_id = issued_refund(env, system="hubspot", channel="hubspot")
    tell(env, event_of(env, refund_id, "RefundIssued"))
    assert [mail["template"] for mail in env.mailer.sent] == ["refund-issued"]


def test_a_failure_after_the_customer_was_told_sends_one_correction(env: World) -> None:
    refund_id = issued_refund(env)
    tell(env, event_of(env, refund_id, "RefundIssued"))
    failed = later(env, refund_id, "RefundFailed", RefundStatus.FAILED)
    tell(env, failed)
    tell(env, failed)
    assert [mail["template"] for mail in env.mailer.sent] == ["refund-issued", "refund-failed"]


def test_the_desk_replies_once_per_refund_after_its_internal_note(env: World) -> None:
    # GIVEN a refund from ticket 4711 of a desk with a public reply
    desk = RecordingDesk()
    refund_id = issued_refund(env, system="zendesk", channel="zendesk")
    events = [event for event in env.publisher.events if event.refund_id == refund_id]
    events.append(later(env, refund_id, "RefundIssued", RefundStatus.REFUNDED, seq=91))
    # WHEN every event reaches the desk's write-back queue, twice
    for event in events + events:
        write_back(event, platform="zendesk", tickets=desk, repository=env.repository, public_reply=True)
    # THEN each event made one internal note, and the customer got one public reply, after the issued note
    kinds = [update.kind for _, update in desk.updates]
    assert kinds.count("public_reply") == 1
    assert kinds.count("internal_note") == len(events)
    reply_at = kinds.index("public_reply")
    reply = desk.updates[reply_at][1]
    assert desk.updates[reply_at - 1][1].event == "RefundIssued"
    assert (reply.label, reply.marker) == (None, f"refundflow:reply:{refund_id}:issued")
    assert "25.00 EUR" in reply.text
    assert "Jane Doe" in reply.text
    assert reply.marker in reply.text


def test_a_desk_without_a_public_reply_gets_notes_only(env: World) -> None:
    desk = RecordingDesk()
    refund_id = issued_refund(env, system="zendesk", channel="zendesk")
    for event in [event for event in env.publisher.events if event.refund_id == refund_id]:
        write_back(event, platform="zendesk", tickets=desk, repository=env.repository)
    assert {update.kind for _, update in desk.updates} == {"internal_note"}
