"""The ticket conformance suite: what every help desk's connector, inbound verification, default mapping and
simulator must do together, the same for Zendesk, Freshdesk, Gorgias, Intercom and HubSpot.

A help desk runs it from ``tests/platforms/<name>/`` with a harness and one line::

    @pytest.fixture
    def harness() -> Iterator[TicketHarness]: ...  # the connector and the simulator, the receiver of its webhooks

    class TestZendeskConformance(TicketSuite):
        pass

What it checks: the catalog entry is a help desk's (role ticket, an inbound section, a ticket record); what an
agent does in a ticket (``TicketSandbox.agent_action``) reaches the webhook as a delivery that verifies and names
the ticket, and a delivery without its credentials, under another secret, too old (where the scheme has a time)
or changed after signing (where the body is signed) is refused; the ticket read through the API and the package's
DEFAULT mapping make the seeded request (payment, exact amount, customer, the approver's role by group, none for
a group nobody mapped) for an approval, a plain request and a withdrawal, and a card number typed into a mapped
field is refused; a write-back shows its note (internal, with its marker) and the state label on the ticket, and
``has_update`` finds that marker and no other; the platform's 429 is a TransientError with its Retry-After, a
5xx never passes for an answer, an unknown ticket is NotFound, and an odd ticket id never reaches a request path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.base import TicketSandbox
from refundflow import catalog
from refundflow.domain.tickets import Intent, TicketMapping, load_mapping, ticket_request
from refundflow.errors import (
    AuthenticationFailed,
    CardDataRefused,
    InvalidRequest,
    NotFound,
    OutcomeUnknownError,
    RefundflowError,
    TransientError,
)
from refundflow.models import RefundRequestBody
from refundflow.money import Money
from refundflow.ports import InboundPlatform, TicketNews, TicketPlatform, TicketUpdate
from refundflow.status import RefundStatus
from tests.support.servers import DeliveryRecorder

Delivery = tuple[dict[str, str], bytes]
CARD_NUMBER = "4111 1111 1111 1111"
# Ids that must never reach a request path (traversal, another script's digits, a query, an empty one).
ODD_TICKET_IDS = ("../1", "1/../../users/me", "٤٧١١", "1?include=users", "", "12 34", "1#x")


def default_mapping(name: str) -> TicketMapping:
    """The package's own ``mapping.yaml`` (what a merchant gets before overriding it)."""
    text = resources.files(f"refundflow.platforms.{name}").joinpath("mapping.yaml").read_text(encoding="utf-8")
    return load_mapping(yaml.safe_load(text), source=f"{name} default")


@dataclass
class TicketHarness:
    """A help desk's connector wired to its simulator, its inbound port, and the simulator's control.

    A lost answer (``timeout_after_commit``) closes the connection at once, whatever the read timeout.
    ``receiver`` records what the
    simulator's trigger delivers (the simulator's webhook URL points at it, with the harness's verification
    secret). ``restamp``: a delivery signed again as if sent ``age`` seconds ago (None: the scheme carries no
    time). ``body_signed`` false: the platform authenticates the sender only (Freshdesk's per-endpoint secret), so
    a changed body is still the platform's news (the ticket is read from the API before anything moves).
    ``unknown_ticket_id``: an id of the platform's shape that names no ticket. ``seed``: keys every
    ``seed_ticket`` call gets besides the suite's own (platform-specific ones the default mapping needs)."""

    name: str
    tickets: TicketPlatform
    inbound: InboundPlatform
    sandbox: TicketSandbox
    receiver: DeliveryRecorder
    mapping: TicketMapping | None = None
    restamp: Callable[[Delivery, float], Delivery] | None = None
    body_signed: bool = True
    unknown_ticket_id: str = "987654321"
    seed: dict[str, Any] = field(default_factory=dict)
    payment_provider: str = "stripe"

    def __post_init__(self) -> None:
        if self.mapping is None:
            self.mapping = default_mapping(self.name)

    @property
    def verification_secret(self) -> Mapping[str, Any]:
        return self.sandbox.local_secrets()["verification"]

    def seed_ticket(self, **request: Any) -> tuple[str, dict[str, Any]]:
        """A seeded ticket's id and the request it was seeded with (a fresh payment id each time). A key given as
        None is left out (``amount=None``: no amount on the ticket), except ``approver_role``, where None is
        meaningful (a group the default mapping gives no role) and always passed."""
        seeded = {
            "payment_provider": self.payment_provider,
            "payment_id": "pi_conformance_" + uuid.uuid4().hex[:12],
            "reason": "damaged",
            "order_id": "ORD-" + uuid.uuid4().hex[:8],
            "amount": "49.90",
            "currency": "EUR",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
            "approver_role": "team_lead",
            **self.seed,
            **request,
        }
        seeded = {key: value for key, value in seeded.items() if value is not None or key == "approver_role"}
        return self.sandbox.seed_ticket(seeded), seeded

    def news(self, ticket_id: str) -> tuple[Delivery, TicketNews]:
        """The first delivery received that verifies and names ``ticket_id``, and its news."""

        def about(delivery: Delivery) -> TicketNews | None:
            try:
                verified = self.inbound.verify(delivery[0], delivery[1], self.verification_secret)
            except (AuthenticationFailed, InvalidRequest):
                return None
            return next((news for news in verified.tickets if news.ticket_id == ticket_id), None)

        self.receiver.wait_until(lambda deliveries: any(about(delivery) for delivery in deliveries))
        delivery = next(delivery for delivery in list(self.receiver.deliveries) if about(delivery))
        found = about(delivery)
        assert found is not None
        return delivery, found

    def act(self, ticket_id: str, intent: str) -> tuple[Delivery, TicketNews]:
        """``agent_action`` and the delivery it caused (the receiver is cleared first)."""
        self.receiver.clear()
        self.sandbox.agent_action(ticket_id, intent)  # type: ignore[arg-type]
        return self.news(ticket_id)

    def request_of(self, ticket_id: str, news: TicketNews) -> tuple[Intent | None, Any]:
        """What the ticket asks for, read through the API under the harness's mapping."""
        assert self.mapping is not None
        return ticket_request(news, self.tickets.read_ticket(ticket_id), self.mapping)

    def requests_seen(self) -> int:
        """How many API requests the simulator received (every simulator is a ``local.simulators`` Simulator)."""
        return len(self.sandbox.requests_seen)


def update(label: str = "issued", status: RefundStatus = RefundStatus.REFUNDED) -> TicketUpdate:
    marker = f"refundflow:evt_{uuid.uuid4().hex}"
    return TicketUpdate(
        marker=marker,
        refund_id="rf_conformance",
        event="RefundIssued",
        status=status,
        label=label,
        text=f"Refund issued: EUR 49.90. Refund rf_conformance, status {status.value}. stripe refund re_1. [{marker}]",
        amount=Money.of(4990, "EUR"),
        provider_refund_id="re_1",
    )


def public_reply() -> TicketUpdate:
    """The customer's one message about a refund, as a help desk's public reply (domain.tickets.public_reply_update)."""
    marker = f"refundflow:reply:rf_{uuid.uuid4().hex[:12]}:issued"
    return TicketUpdate(
        marker=marker,
        refund_id="rf_conformance",
        event="RefundIssued",
        status=RefundStatus.REFUNDED,
        text=f"Hello Ada, your refund of 49.90 EUR is on its way. (Reference: {marker})",
        amount=Money.of(4990, "EUR"),
        kind="public_reply",
    )


def _writes(harness: TicketHarness) -> list[str]:
    entry = catalog.platform(harness.name)
    return list(entry.ticket.writes) if entry.ticket else []


class TicketSuite:
    """Subclass it in a help desk's tests with a ``harness`` fixture yielding a TicketHarness."""

    # ------------------------------------------------------------ the catalog and the sandbox

    def test_the_catalog_entry_is_a_help_desks(self, harness: TicketHarness) -> None:
        entry = catalog.platform(harness.name)
        assert "ticket" in entry.roles
        assert entry.ticket is not None
        assert entry.ticket.writes
        assert entry.inbound is not None
        assert entry.secrets.api
        assert entry.secrets.verification
        assert harness.name in [platform.name for platform in catalog.ticket_platforms()]
        assert (harness.tickets.name, harness.inbound.name) == (harness.name, harness.name)

    def test_the_simulator_offers_the_ticket_sandbox(self, harness: TicketHarness) -> None:
        assert isinstance(harness.sandbox, TicketSandbox)
        secrets = harness.sandbox.local_secrets()
        assert set(secrets) == {"api", "verification"}
        entry = catalog.platform(harness.name)
        assert set(entry.secrets.api) <= set(secrets["api"])
        assert set(entry.secrets.verification) <= set(secrets["verification"])

    def test_an_unknown_ticket_is_a_key_error_for_the_sandbox(self, harness: TicketHarness) -> None:
        with pytest.raises(KeyError):
            harness.sandbox.agent_action(harness.unknown_ticket_id, "approve")
        with pytest.raises(KeyError):
            harness.sandbox.ticket_view(harness.unknown_ticket_id)

    # ------------------------------------------------------------ deliveries

    def test_an_agents_action_sends_a_delivery_that_verifies_and_names_the_ticket(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        (headers, body), news = harness.act(ticket_id, "approve")
        delivery = harness.inbound.verify(headers, body, harness.verification_secret)
        assert [item.ticket_id for item in delivery.tickets] == [ticket_id]
        assert news.platform == harness.name
        assert news.event_id
        assert 200 <= delivery.answer.status < 300
        assert not delivery.events  # help-desk news only, never payment events

    def test_two_actions_are_two_deliveries(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket(approver_role="agent")
        _, first = harness.act(ticket_id, "request")
        _, second = harness.act(ticket_id, "approve")
        assert first.event_id != second.event_id

    def test_a_delivery_without_its_credentials_is_refused(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        (_, body), _ = harness.act(ticket_id, "approve")
        with pytest.raises(AuthenticationFailed):
            harness.inbound.verify({"Content-Type": "application/json"}, body, harness.verification_secret)

    def test_a_delivery_under_another_secret_is_refused(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        (headers, body), _ = harness.act(ticket_id, "approve")
        other = {key: _other(value) for key, value in harness.verification_secret.items()}
        with pytest.raises(AuthenticationFailed):
            harness.inbound.verify(headers, body, other)

    def test_a_stale_delivery_is_refused(self, harness: TicketHarness) -> None:
        if harness.restamp is None:
            pytest.skip("the platform's scheme carries no time")
        ticket_id, _ = harness.seed_ticket()
        delivery, _ = harness.act(ticket_id, "approve")
        fresh_headers, fresh_body = harness.restamp(delivery, 5.0)
        assert harness.inbound.verify(
            fresh_headers, fresh_body, harness.verification_secret
        ).tickets  # the restamp is right
        headers, body = harness.restamp(delivery, 3_600.0)
        with pytest.raises(AuthenticationFailed):
            harness.inbound.verify(headers, body, harness.verification_secret)

    def test_a_delivery_changed_after_signing_is_refused(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        (headers, body), _ = harness.act(ticket_id, "approve")
        tampered = body.replace(ticket_id.encode(), (ticket_id + "1").encode(), 1)
        assert tampered != body
        if not harness.body_signed:
            # the sender is authenticated, the body is not signed: still news only (the ticket is read from the API),
            # or refused where the changed id no longer has the platform's shape (a GUID with one digit more)
            try:
                verified = harness.inbound.verify(headers, tampered, harness.verification_secret)
            except InvalidRequest:
                return
            assert all(not item.payload.get("approved_by") for item in verified.tickets)
            return
        with pytest.raises(AuthenticationFailed):
            harness.inbound.verify(headers, tampered, harness.verification_secret)

    # ------------------------------------------------------------ the ticket under the default mapping

    def test_an_approval_by_a_team_lead_asks_for_the_seeded_refund(self, harness: TicketHarness) -> None:
        ticket_id, seeded = harness.seed_ticket(approver_role="team_lead")
        _, news = harness.act(ticket_id, "approve")
        intent, request = harness.request_of(ticket_id, news)
        assert intent is Intent.APPROVED
        assert isinstance(request, RefundRequestBody)
        assert request.payment.provider.value == seeded["payment_provider"]
        assert request.payment.payment_id == seeded["payment_id"]
        assert request.amount == Money.of(4990, "EUR")
        assert request.customer.email == seeded["customer_email"]
        assert request.source.system == harness.name
        assert request.source.ticket_id == ticket_id
        assert request.approved_by is not None
        assert request.approved_by.role == "team_lead"

    def test_an_approval_by_an_agent_claims_the_agent_role(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket(approver_role="agent")
        _, news = harness.act(ticket_id, "approve")
        intent, request = harness.request_of(ticket_id, news)
        assert intent is Intent.APPROVED
        assert request.approved_by is not None
        assert request.approved_by.role == "agent"

    def test_an_approval_by_a_group_nobody_mapped_claims_no_role(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket(approver_role=None)
        _, news = harness.act(ticket_id, "approve")
        intent, request = harness.request_of(ticket_id, news)
        assert intent is Intent.APPROVED
        assert request.approved_by is None

    def test_a_ticket_that_asks_makes_a_request_without_an_approver(self, harness: TicketHarness) -> None:
        ticket_id, seeded = harness.seed_ticket(approver_role="team_lead", amount=None)
        _, news = harness.act(ticket_id, "request")
        intent, request = harness.request_of(ticket_id, news)
        assert intent is Intent.REQUESTED
        assert request.approved_by is None
        assert request.amount is None  # no amount on the ticket: a full refund
        assert request.payment.payment_id == seeded["payment_id"]

    def test_a_withdrawn_approval_cancels(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        harness.act(ticket_id, "approve")
        _, news = harness.act(ticket_id, "withdraw")
        intent, _ = harness.request_of(ticket_id, news)
        assert intent is Intent.CANCELLED

    def test_a_card_number_in_a_mapped_field_is_refused_and_never_echoed(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket(order_id=CARD_NUMBER)
        _, news = harness.act(ticket_id, "approve")
        with pytest.raises(CardDataRefused) as refused:
            harness.request_of(ticket_id, news)
        assert CARD_NUMBER not in str(refused.value)
        assert CARD_NUMBER.replace(" ", "") not in str(refused.value)

    # ------------------------------------------------------------ write-back

    def test_a_write_back_shows_an_internal_note_and_the_state_label(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        written = update("issued")
        harness.tickets.write_back(ticket_id, written)
        view = harness.sandbox.ticket_view(ticket_id)
        assert [note for note in view["notes"] if written.marker in note] != []
        assert not any(written.marker in text for text in view["public"])  # never sent to the customer
        assert any(written.label in str(label).lower() for label in view["labels"]), view["labels"]

    def test_a_later_state_replaces_the_earlier_label(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        harness.tickets.write_back(ticket_id, update("processing", RefundStatus.REFUND_SUBMITTED))
        harness.tickets.write_back(ticket_id, update("completed", RefundStatus.COMPLETED))
        view = harness.sandbox.ticket_view(ticket_id)
        assert any("completed" in str(label).lower() for label in view["labels"])
        assert not any("processing" in str(label).lower() for label in view["labels"]), view["labels"]
        assert len(view["notes"]) >= 2

    def test_a_note_only_update_leaves_the_refund_state_as_it_was(self, harness: TicketHarness) -> None:
        # GIVEN a ticket whose refund is issued WHEN a later delivery of it is refused (a note, no state label)
        ticket_id, _ = harness.seed_ticket()
        harness.tickets.write_back(ticket_id, update("issued"))
        marker = f"refundflow:refused:{uuid.uuid4().hex}"
        refused = TicketUpdate(
            marker=marker, event="RefundRequestRefused", text=f"Refund request not taken: amount. [{marker}]"
        )
        harness.tickets.write_back(ticket_id, refused)
        # THEN the note is there, internal, and the ticket still says issued
        view = harness.sandbox.ticket_view(ticket_id)
        assert [note for note in view["notes"] if marker in note] != []
        assert not any(marker in text for text in view["public"])
        assert any("issued" in str(label).lower() for label in view["labels"]), view["labels"]
        assert harness.tickets.has_update(ticket_id, marker) is True

    def test_has_update_finds_a_written_marker_and_no_other(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        written = update()
        assert harness.tickets.has_update(ticket_id, written.marker) is False
        harness.tickets.write_back(ticket_id, written)
        assert harness.tickets.has_update(ticket_id, written.marker) is True
        assert harness.tickets.has_update(ticket_id, update().marker) is False

    def test_a_write_whose_answer_was_lost_is_found_on_the_ticket(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        written = update()
        harness.sandbox.inject_fault("write_back", "timeout_after_commit")
        with pytest.raises((OutcomeUnknownError, TransientError)):
            harness.tickets.write_back(ticket_id, written)
        assert harness.tickets.has_update(ticket_id, written.marker) is True

    # ------------------------------------------------------------ the customer's message (catalog: public_reply)

    def test_a_public_reply_reaches_the_customer_and_leaves_the_state_label(self, harness: TicketHarness) -> None:
        if "public_reply" not in _writes(harness):
            pytest.skip(f"{harness.name} has no public reply: its customers are e-mailed")
        # GIVEN a ticket whose refund is issued (internal note and label)
        ticket_id, _ = harness.seed_ticket()
        harness.tickets.write_back(ticket_id, update("issued"))
        before = harness.sandbox.ticket_view(ticket_id)
        # WHEN the customer's message is written as a public reply
        reply = public_reply()
        harness.tickets.write_back(ticket_id, reply)
        # THEN the customer sees it, the agents' notes do not hold it, the label is unchanged, and it is found again
        view = harness.sandbox.ticket_view(ticket_id)
        assert [text for text in view["public"] if reply.marker in text and "on its way" in text] != []
        assert not any(reply.marker in note for note in view["notes"])
        assert view["labels"] == before["labels"]
        assert harness.tickets.has_update(ticket_id, reply.marker) is True

    def test_a_public_reply_whose_answer_was_lost_is_found_on_the_ticket(self, harness: TicketHarness) -> None:
        if "public_reply" not in _writes(harness):
            pytest.skip(f"{harness.name} has no public reply")
        ticket_id, _ = harness.seed_ticket()
        reply = public_reply()
        harness.sandbox.inject_fault("public_reply", "timeout_after_commit")
        with pytest.raises((OutcomeUnknownError, TransientError)):
            harness.tickets.write_back(ticket_id, reply)
        assert harness.tickets.has_update(ticket_id, reply.marker) is True

    def test_a_write_back_to_an_unknown_ticket_is_not_found(self, harness: TicketHarness) -> None:
        with pytest.raises(NotFound):
            harness.tickets.write_back(harness.unknown_ticket_id, update())

    # ------------------------------------------------------------ failures, in the small set

    @pytest.mark.parametrize("operation", ["read_ticket", "write_back", "has_update"])
    def test_a_rate_limit_is_transient_with_the_platforms_retry_after(
        self, harness: TicketHarness, operation: str
    ) -> None:
        ticket_id, _ = harness.seed_ticket()
        harness.sandbox.inject_fault(operation, "transient")
        with pytest.raises(TransientError) as limited:
            _call(harness, operation, ticket_id)
        assert limited.value.retry_after_seconds is not None
        assert limited.value.retry_after_seconds > 0
        _call(harness, operation, ticket_id)  # the next call goes through

    def test_an_unknown_ticket_is_not_found(self, harness: TicketHarness) -> None:
        with pytest.raises(NotFound):
            harness.tickets.read_ticket(harness.unknown_ticket_id)

    def test_a_server_error_on_a_read_is_transient(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        harness.sandbox.inject_fault("read_ticket", "server_error")
        with pytest.raises(TransientError):
            harness.tickets.read_ticket(ticket_id)
        harness.sandbox.inject_fault("has_update", "server_error")
        with pytest.raises(TransientError):
            harness.tickets.has_update(ticket_id, update().marker)

    def test_a_server_error_on_a_write_is_never_taken_for_success(self, harness: TicketHarness) -> None:
        ticket_id, _ = harness.seed_ticket()
        harness.sandbox.inject_fault("write_back", "server_error")
        with pytest.raises((TransientError, OutcomeUnknownError)):
            harness.tickets.write_back(ticket_id, update())

    @pytest.mark.parametrize("ticket_id", ODD_TICKET_IDS)
    def test_an_odd_ticket_id_never_reaches_a_request_path(self, harness: TicketHarness, ticket_id: str) -> None:
        before = harness.requests_seen()
        for operation in ("read_ticket", "write_back", "has_update"):
            with pytest.raises(RefundflowError):
                _call(harness, operation, ticket_id)
        assert harness.requests_seen() == before


def _call(harness: TicketHarness, operation: str, ticket_id: str) -> Any:
    if operation == "read_ticket":
        return harness.tickets.read_ticket(ticket_id)
    if operation == "write_back":
        return harness.tickets.write_back(ticket_id, update())
    return harness.tickets.has_update(ticket_id, update().marker)


def _other(value: Any) -> Any:
    """The same shape of secret (length, alphabet) with its last character changed."""
    if isinstance(value, str) and value:
        last = value[-1]
        return value[:-1] + ("1" if last == "0" else "0" if last.isalnum() else "x")
    if isinstance(value, list):
        return [_other(item) for item in value]
    if isinstance(value, dict):
        return {key: _other(item) for key, item in value.items()}
    return value
