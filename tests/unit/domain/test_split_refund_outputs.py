"""What a split-tender refund writes out: the credit booking carries every leg, the customer hears once (of the
parent, every leg in plain words, on every channel), a leg never messages the customer but still reaches ops, and
the ticket's note lists the legs (a failed one with its remedies)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from local.cfn import Stack
from refundflow.domain.books import credit_booking, update_invoice
from refundflow.domain.notifications import Channel, customer_message, legs_in_words, merchant_webhook_body, notify
from refundflow.domain.payments import issue_refund
from refundflow.domain.tickets import public_reply_update, ticket_update, write_back
from refundflow.events import RefundEvent
from refundflow.models import (
    BooksSystem,
    CreditDocument,
    InvoiceReference,
    LegStatus,
    PaymentProvider,
    PaymentReference,
    Refund,
    SplitLeg,
    Tender,
    TenderKind,
)
from refundflow.money import Money
from refundflow.ports import CreditBooking, CreditLeg, TicketPlatform, TicketUpdate
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import World, a_refund, refund_request_body, world

OPS = "ops@shop.example"
CARD = PaymentReference(provider=PaymentProvider.STRIPE, payment_id="pi_card_4242")
PAYPAL = PaymentReference(provider=PaymentProvider.PAYPAL, payment_id="8AB12345CD6789012")
# A store-credit leg names no payment (refundflow's ledger): leg() drops it.
STORE_CREDIT = PaymentReference(provider=PaymentProvider.STRIPE, payment_id="sc_ledger_1")


def leg(
    index: int,
    payment: PaymentReference,
    kind: TenderKind,
    amount: Money,
    *,
    status: LegStatus = LegStatus.SUCCEEDED,
    provider_refund_id: str | None = None,
    **more: object,
) -> SplitLeg:
    return SplitLeg.model_validate(
        {
            "index": index,
            "tender_index": index,
            "payment": None if kind is TenderKind.STORE_CREDIT else payment,
            "kind": kind,
            "amount": amount,
            "status": status,
            "refund_id": None if kind is TenderKind.STORE_CREDIT else f"rf_leg{index}",
            "provider_refund_id": provider_refund_id,
            **more,
        }
    )


def card_and_store_credit(currency: str = "EUR", card: int = 6_000, credit: int = 4_000) -> list[SplitLeg]:
    return [
        leg(0, CARD, TenderKind.CARD, Money.of(card, currency), provider_refund_id="re_card_1"),
        leg(1, STORE_CREDIT, TenderKind.STORE_CREDIT, Money.of(credit, currency)),
    ]


def parent(legs: list[SplitLeg], *, status: RefundStatus = RefundStatus.REFUNDED, **more: object) -> Refund:
    """A split-tender parent, as the split lifecycle leaves it: its amount is what its legs add up to."""
    total = Money.zero(legs[0].amount.currency)
    for one in legs:
        if one.status is LegStatus.SUCCEEDED:
            total = total + one.amount
    base = a_refund("RMA-SPLIT")
    return base.model_copy(
        update={
            "status": status,
            "amount": total,
            "payment": CARD,
            "tenders": [Tender(payment=CARD, kind=TenderKind.CARD), Tender(payment=PAYPAL, kind=TenderKind.WALLET)],
            "legs": legs,
            "invoice": InvoiceReference(system=BooksSystem.XERO, invoice_id="INV-1"),
            "customer": base.customer.model_copy(update={"name": "Jane"}),
            **more,
        }
    )


def issued_event(refund: Refund, *, parent_refund_id: str | None = None) -> RefundEvent:
    event = RefundEvent.for_refund(refund, "RefundIssued", seq=7, details={})
    return event.model_copy(update={"parent_refund_id": parent_refund_id})


# ---------------------------------------------------------------- the credit booking


def test_a_parents_booking_carries_every_leg_that_moved_money() -> None:
    # GIVEN a parent whose PayPal leg failed and was moved to store credit by a remedy
    legs = [
        leg(0, CARD, TenderKind.CARD, eur(6_000), provider_refund_id="re_card_1"),
        leg(1, PAYPAL, TenderKind.WALLET, eur(4_000), status=LegStatus.FAILED, failure="declined"),
        leg(2, STORE_CREDIT, TenderKind.STORE_CREDIT, eur(4_000), replaces=1),
    ]
    refund = parent(legs)
    # WHEN the books' booking is built
    booking = credit_booking(refund)
    # THEN it carries the card leg and the store credit, not the failed leg; they add up to the refund
    assert [(one.index, one.payment_provider, one.amount, one.provider_refund_id) for one in booking.legs] == [
        (0, PaymentProvider.STRIPE, eur(6_000), "re_card_1"),
        (2, None, eur(4_000), None),
    ]
    assert booking.amount == eur(10_000)
    assert sum(one.amount.minor_units for one in booking.legs) == booking.amount.minor_units
    assert booking.store_credit == eur(4_000)
    assert [one.index for one in booking.cash_legs()] == [0]
    assert booking.payment_provider is PaymentProvider.STRIPE
    assert booking.legs_in_words() == "leg 1 stripe 60.00 EUR re_card_1; leg 3 store credit 40.00 EUR"


def test_the_first_cash_leg_names_the_clearing_account_when_the_card_is_not_first() -> None:
    legs = [
        leg(0, STORE_CREDIT, TenderKind.STORE_CREDIT, eur(1_000)),
        leg(1, PAYPAL, TenderKind.WALLET, eur(2_000), provider_refund_id="PP-1"),
    ]
    assert credit_booking(parent(legs)).payment_provider is PaymentProvider.PAYPAL


def test_a_refund_of_one_payment_books_exactly_what_it_always_did() -> None:
    # GIVEN a refund of one payment
    refund = a_refund("RMA-ONE").model_copy(
        update={
            "status": RefundStatus.REFUNDED,
            "amount": eur(2_500),
            "invoice": InvoiceReference(system=BooksSystem.XERO, invoice_id="INV-1"),
        }
    )
    # WHEN its booking is built THEN it has no legs, and its fields are the ones it always had
    booking = credit_booking(refund)
    assert booking.legs == []
    assert booking.store_credit == Money.zero("EUR")
    assert [(one.payment_provider, one.amount) for one in booking.cash_legs()] == [(PaymentProvider.STRIPE, eur(2_500))]
    assert booking.legs_in_words() == ""
    expected = CreditBooking(
        refund_id=refund.refund_id,
        invoice=InvoiceReference(system=BooksSystem.XERO, invoice_id="INV-1"),
        amount=eur(2_500),
        customer=refund.customer,
        booking_date=booking.booking_date,
        reference=refund.refund_id,
        payment_provider=PaymentProvider.STRIPE,
        idempotency_key=booking.idempotency_key,
        external_reference=refund.refund_id,
    )
    assert booking == expected


def test_leg_words_are_cut_to_a_field_that_is_shorter() -> None:
    legs = [
        CreditLeg(index=n, kind=TenderKind.CARD, payment_provider=PaymentProvider.STRIPE, amount=eur(100))
        for n in range(10)
    ]
    booking = credit_booking(parent(card_and_store_credit())).model_copy(update={"legs": legs})
    cut = booking.legs_in_words(40)
    assert len(cut) == 40
    assert cut.endswith("...")


class LeftCreditBooks:
    """Books whose document of a split refund is already recorded: the cash paid out, the store credit left on it."""

    def __init__(self) -> None:
        self.recorded: list[CreditBooking] = []

    def found(self, booking: CreditBooking) -> CreditDocument:
        return CreditDocument(
            system=BooksSystem.XERO,
            document_id="cn-1",
            total=booking.amount,
            allocated_to_invoice=Money.zero(booking.currency),
            cash_refunded=booking.amount - booking.store_credit,
            external_reference=booking.external_reference,
        )


def test_a_recorded_split_document_with_store_credit_left_on_it_is_found_not_recorded_again(env: World) -> None:
    # GIVEN a paid split parent whose document the books already hold (cash 60.00 paid out, 40.00 left as credit)
    env.provider.add_payment(PAYMENT, eur(10_000))
    refund_id = env.reserved(refund_request_body(reference="RMA-SPLIT-BOOKS", amount=10_000))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    refund = env.repository.get(refund_id)
    env.recorder.note(refund, "LegsRecorded", actor="tests:split", changes={"legs": card_and_store_credit()})
    booking = credit_booking(env.repository.get(refund_id))
    left = LeftCreditBooks().found(booking)
    env.books.documents[booking.external_reference] = left
    # WHEN UpdateInvoice runs
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    # THEN the document found is the refund's, and nothing was recorded again
    assert env.books.record_calls == []
    done = env.repository.get(refund_id)
    assert done.status is RefundStatus.COMPLETED
    assert done.credit_document == left


# ---------------------------------------------------------------- the customer's message


def test_the_message_lists_every_leg_in_plain_words_and_the_total_adds_up() -> None:
    legs = [
        leg(0, CARD, TenderKind.CARD, eur(6_000), provider_refund_id="re_card_1"),
        leg(1, PAYPAL, TenderKind.WALLET, eur(2_500), provider_refund_id="PP-1"),
        leg(2, STORE_CREDIT, TenderKind.STORE_CREDIT, eur(1_500)),
    ]
    text = customer_message("issued", parent(legs), eur(10_000))
    assert "we have refunded 100.00 EUR for RMA-SPLIT: " in text
    assert (
        "60.00 EUR back to your card; 25.00 EUR back to your PayPal account; "
        "15.00 EUR as store credit you can use on your next order." in text
    )
    # never card data, nor the payments' ids
    for secret in ("pi_card_4242", "8AB12345CD6789012", "sc_ledger_1", "4242"):
        assert secret not in text


@pytest.mark.parametrize(
    ("currency", "card", "credit", "words"),
    [
        ("JPY", 6_000, 4_000, "we have refunded 10000 JPY for RMA-SPLIT: 6000 JPY back to your card; 4000 JPY as"),
        ("KWD", 6_125, 3_875, "we have refunded 10.000 KWD for RMA-SPLIT: 6.125 KWD back to your card; 3.875 KWD as"),
    ],
)
def test_amounts_are_rendered_in_the_currencys_own_minor_units(
    currency: str, card: int, credit: int, words: str
) -> None:
    refund = parent(card_and_store_credit(currency, card, credit))
    assert words in customer_message("issued", refund, refund.amount)


def test_the_merchant_webhook_lists_the_legs_in_minor_units() -> None:
    refund = parent(card_and_store_credit("KWD", 6_125, 3_875))
    body = merchant_webhook_body("issued", issued_event(refund), refund, refund.amount)
    assert body["data"]["amount"] == {"minor_units": 10_000, "currency": "KWD"}
    assert body["data"]["legs"] == [
        {
            "index": 0,
            "kind": "card",
            "amount": {"minor_units": 6_125, "currency": "KWD"},
            "provider": "stripe",
            "provider_refund_id": "re_card_1",
            "words": "6.125 KWD back to your card",
        },
        {
            "index": 1,
            "kind": "store_credit",
            "amount": {"minor_units": 3_875, "currency": "KWD"},
            "provider": None,
            "provider_refund_id": None,
            "words": "3.875 KWD as store credit you can use on your next order",
        },
    ]
    assert sum(one["amount"]["minor_units"] for one in body["data"]["legs"]) == body["data"]["amount"]["minor_units"]
    assert "pi_card_4242" not in json.dumps(body)


def test_a_refund_of_one_payment_has_no_legs_in_its_webhook_body() -> None:
    refund = a_refund("RMA-ONE").model_copy(update={"status": RefundStatus.REFUNDED, "amount": eur(2_500)})
    body = merchant_webhook_body("issued", issued_event(refund), refund, refund.amount)
    assert "legs" not in body["data"]
    assert "to your original payment method" in body["data"]["message"]


def test_the_tickets_public_reply_lists_every_leg() -> None:
    refund = parent(card_and_store_credit())
    update = public_reply_update(issued_event(refund), refund, "issued")
    assert update.kind == "public_reply"
    assert legs_in_words(refund) in update.text
    assert "60.00 EUR back to your card; 40.00 EUR as store credit" in update.text


# ---------------------------------------------------------------- who hears of what


@pytest.fixture
def env() -> Iterator[World]:
    with world() as built:
        yield built


def stored_parent(env: World, reference: str, legs: list[SplitLeg], **changes: object) -> Refund:
    """A parent in the repository, paid (REFUNDED), with ``legs``."""
    payment_id = f"pi_{reference.lower().replace('-', '_')}"
    env.provider.add_payment(payment_id, eur(10_000))
    refund_id = env.reserved(
        refund_request_body(reference=reference, amount=10_000, payment_id=payment_id), f"dlv-{reference}"
    )
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    refund = env.repository.get(refund_id)
    return env.recorder.note(refund, "LegsRecorded", actor="tests:split", changes={"legs": legs, **changes})


def stored_leg(env: World, reference: str, parent_refund: Refund) -> Refund:
    """A payment leg of ``parent_refund``: a child refund naming its parent (as the split lifecycle creates it)."""
    child = a_refund(reference).model_copy(
        update={"status": RefundStatus.REFUNDED, "amount": eur(6_000), "parent_refund_id": parent_refund.refund_id}
    )
    return env.repository.create(child, actor="tests:split", delivery=None).refund


def tell(env: World, event: RefundEvent, channel: Channel = Channel.CUSTOMER) -> str | None:
    return notify(event, channel, repository=env.repository, mailer=env.mailer, ops_email=OPS)


def test_the_parents_email_lists_every_leg(env: World) -> None:
    refund = stored_parent(env, "RMA-SPLIT-MAIL", card_and_store_credit())
    tell(env, issued_event(refund))
    (mail,) = env.mailer.sent
    assert mail["template"] == "refund-issued"
    assert mail["data"]["amount"] == "100.00 EUR"
    assert (
        mail["data"]["legs"] == "60.00 EUR back to your card; 40.00 EUR as store credit you can use on your next order"
    )


def test_a_leg_never_messages_the_customer_but_reaches_ops(env: World) -> None:
    # GIVEN a leg of a split refund (a child refund naming its parent), paid
    parent_refund = stored_parent(env, "RMA-SPLIT-PARENT", card_and_store_credit())
    child = stored_leg(env, "RMA-SPLIT-LEG", parent_refund)
    issued = RefundEvent.for_refund(child, "RefundIssued", seq=5, details={})
    assert issued.parent_refund_id == parent_refund.refund_id
    failed = RefundEvent.for_refund(child, "RefundFailed", seq=6, details={"reason": "card expired"})
    # WHEN its RefundIssued and RefundFailed reach the customer queue, and its RefundFailed the ops queue
    assert tell(env, issued) is None
    assert tell(env, failed) is None
    assert tell(env, failed, Channel.OPS) is not None
    # THEN the customer got nothing; ops got the failure, naming the parent
    (mail,) = env.mailer.sent
    assert (mail["to"], mail["template"]) == (OPS, "ops-alert")
    assert json.loads(mail["data"]["details"]) == {"leg_of": parent_refund.refund_id, "reason": "card expired"}


def test_a_leg_is_held_back_even_when_its_event_does_not_name_the_parent(env: World) -> None:
    # GIVEN a leg's RefundIssued published before events carried parent_refund_id
    parent_refund = stored_parent(env, "RMA-SPLIT-OLD", card_and_store_credit())
    child = stored_leg(env, "RMA-SPLIT-OLD-LEG", parent_refund)
    event = issued_event(child, parent_refund_id=None)
    # WHEN notify gets it THEN the stored refund says it is a leg: nothing is sent
    assert tell(env, event) is None
    assert env.mailer.sent == []


def test_the_customer_rule_routes_a_parent_never_a_leg_and_the_ops_rule_still_gets_a_leg() -> None:
    # GIVEN the template's customer and ops rules on a bus (moto), each targeting a queue
    stack = Stack.from_template("refundflow")
    refund = parent(card_and_store_credit())
    leg_needs_attention = RefundEvent.for_refund(refund, "RefundNeedsAttention", seq=8, details={}).model_copy(
        update={"parent_refund_id": "rf_parent", "status": RefundStatus.NEEDS_ATTENTION}
    )
    published = [issued_event(refund), issued_event(refund, parent_refund_id="rf_parent"), leg_needs_attention]
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queues = {}
        for rule in ("CustomerNotificationsRule", "OpsNotificationsRule"):
            queue_url = sqs.create_queue(QueueName=rule)["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
            pattern = stack.resources[rule]["Properties"]["EventPattern"]
            events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": attributes["QueueArn"]}])
            queues[rule] = queue_url
        # WHEN a parent's and a leg's RefundIssued, and a leg's RefundNeedsAttention, are published as the
        # EventBridge adapter writes them
        for event in published:
            detail = json.dumps(event.model_dump(mode="json", exclude={"detail_type"}))
            events.put_events(Entries=[{"Source": "refundflow", "DetailType": event.detail_type, "Detail": detail}])
        received = {
            rule: [
                (json.loads(message["Body"])["detail-type"], json.loads(message["Body"])["detail"]["parent_refund_id"])
                for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            ]
            for rule, url in queues.items()
        }
    # THEN only the parent's RefundIssued reached the customer queue, and the leg's attention reached ops
    assert received == {
        "CustomerNotificationsRule": [("RefundIssued", None)],
        "OpsNotificationsRule": [("RefundNeedsAttention", "rf_parent")],
    }


def test_the_email_template_lists_the_legs_and_keeps_the_one_payment_text() -> None:
    stack = Stack.from_template("refundflow")
    template = stack.resources["RefundIssuedEmailTemplate"]["Properties"]["Template"]
    with mock_aws():
        ses = boto3.client("ses", region_name="us-east-1")
        ses.create_template(
            Template={
                "TemplateName": "issued",
                "SubjectPart": template["SubjectPart"],
                "TextPart": template["TextPart"],
                "HtmlPart": template["HtmlPart"],
            }
        )
        # SES needs every variable of the template in the data: a refund of one payment sends empty legs
        base = {
            "name": "Jane",
            "amount": "100.00 EUR",
            "reference": "RMA-1",
            "refund_id": "rf_1",
            "legs": "",
            "arrival": "It usually shows up within 5-10 business days.",
            "trace": "",
        }
        split = base | {"legs": "60.00 EUR back to your card; 40.00 EUR as store credit"}
        one = ses.test_render_template(TemplateName="issued", TemplateData=json.dumps(base))["RenderedTemplate"]
        both = ses.test_render_template(TemplateName="issued", TemplateData=json.dumps(split))["RenderedTemplate"]
    assert "for RMA-1 to your original payment method." in one
    assert "store credit" not in one
    assert "for RMA-1: 60.00 EUR back to your card; 40.00 EUR as store credit." in both
    assert "original payment method" not in both


# ---------------------------------------------------------------- the ticket's note


def test_the_tickets_note_lists_the_legs_with_status_and_provider_refund_ids() -> None:
    refund = parent(card_and_store_credit())
    update = ticket_update(issued_event(refund), refund)
    assert "Legs: 1) 60.00 EUR card stripe succeeded, refund re_card_1; 2) 40.00 EUR store credit succeeded." in (
        update.text
    )
    assert update.text.endswith(f"[{update.marker}]")


def test_a_parent_needing_attention_says_which_leg_failed_and_the_remedies() -> None:
    # GIVEN a parent whose PayPal leg failed after the card leg succeeded
    legs = [
        leg(0, CARD, TenderKind.CARD, eur(6_000), provider_refund_id="re_card_1"),
        leg(
            1,
            PAYPAL,
            TenderKind.WALLET,
            eur(4_000),
            status=LegStatus.FAILED,
            failure="PayPal refused: the payer's account is closed, card 4111 1111 1111 1111",
            remedies=["retry the PayPal refund", "move 40.00 EUR to store credit"],
        ),
    ]
    refund = parent(legs, status=RefundStatus.NEEDS_ATTENTION, attention_reason="split_leg_failed")
    event = RefundEvent.for_refund(refund, "RefundNeedsAttention", seq=9, details={})
    # WHEN the ticket's note is written
    text = ticket_update(event, refund).text
    # THEN it names the failed leg, why (card numbers masked), and the remedies proposed
    assert "2) 40.00 EUR wallet paypal failed" in text
    assert "Leg 2 (40.00 EUR, paypal) failed: PayPal refused: the payer's account is closed" in text
    assert "Remedies: retry the PayPal refund; move 40.00 EUR to store credit." in text
    assert "4111 1111 1111 1111" not in text


def test_a_replaced_failed_leg_is_not_reported_as_pending_a_decision() -> None:
    legs = [
        leg(0, PAYPAL, TenderKind.WALLET, eur(4_000), status=LegStatus.FAILED, failure="closed"),
        leg(1, STORE_CREDIT, TenderKind.STORE_CREDIT, eur(4_000), replaces=0),
    ]
    refund = parent(legs, status=RefundStatus.NEEDS_ATTENTION, attention_reason="books_update_failed")
    text = ticket_update(RefundEvent.for_refund(refund, "RefundNeedsAttention", seq=9, details={}), refund).text
    assert "2) 40.00 EUR store credit succeeded, replaces leg 1" in text
    assert "Remedies" not in text


class RecordingDesk(TicketPlatform):
    name = "zendesk"

    def __init__(self) -> None:
        self.updates: list[TicketUpdate] = []

    def read_ticket(self, ticket_id: str) -> dict[str, object]:
        return {}

    def has_update(self, ticket_id: str, marker: str) -> bool:
        return any(update.marker == marker for update in self.updates)

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        self.updates.append(update)


def test_a_leg_that_carries_a_ticket_gets_an_internal_note_but_never_a_public_reply(env: World) -> None:
    # GIVEN a leg whose event names a ticket of a desk with a public reply (defence in depth: legs have none)
    parent_refund = stored_parent(env, "RMA-SPLIT-DESK", card_and_store_credit())
    child = stored_leg(env, "RMA-SPLIT-DESK-LEG", parent_refund)
    event = RefundEvent.for_refund(child, "RefundIssued", seq=5, details={})
    event = event.model_copy(update={"source": event.source.model_copy(update={"platform": "zendesk"})})
    desk = RecordingDesk()
    # WHEN the desk's write-back gets it
    write_back(event, platform="zendesk", tickets=desk, repository=env.repository, public_reply=True)
    # THEN the agents' note only: no reply to the customer
    assert [update.kind for update in desk.updates] == ["internal_note"]


def test_a_refund_of_one_payment_sends_empty_legs_to_the_template(env: World) -> None:
    env.provider.add_payment(PAYMENT, eur(10_000))
    refund_id = env.reserved(refund_request_body(reference="RMA-ONE-MAIL", amount=2_500), "dlv-one-mail")
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    tell(env, issued_event(env.repository.get(refund_id)))
    (mail,) = env.mailer.sent
    assert (mail["data"]["amount"], mail["data"]["legs"]) == ("25.00 EUR", "")
