"""SAP through the domain's books step, with the real connector against the simulator and the refunds table on moto:
a credit memo request blocked for billing makes the refund wait (policy ``wait``) until a person releases it, or
completes the refund with the request recorded as pending (policy ``record``); one request either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.simulators.sap import SapSimulator
from refundflow.domain.books import update_invoice
from refundflow.domain.payments import issue_refund
from refundflow.errors import TransientError
from refundflow.models import CreditDocumentKind, CreditDocumentState
from refundflow.status import RefundStatus
from tests.platforms.sap.conftest import SecretStore, make_books
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import World, refund_request_body, world

S = RefundStatus


@pytest.fixture
def env() -> Iterator[World]:
    with world() as built:
        built.provider.add_payment(PAYMENT, eur(10_000))
        yield built


def refunded(env: World, invoice_id: str, amount: int) -> str:
    """A refund of ``amount`` EUR cents paid at the (fake) provider, crediting SAP invoice ``invoice_id``."""
    body = refund_request_body(amount=amount, invoice_id=None, invoice={"system": "sap", "invoice_id": invoice_id})
    refund_id = env.reserved(body)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider, now=env.clock)
    assert env.repository.get(refund_id).status is S.REFUNDED
    return refund_id


def test_a_blocked_request_keeps_the_refund_waiting_until_released_then_completes_once(
    env: World, served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    # GIVEN SAP blocks new credit memo requests for billing, and the merchant's policy is to wait
    books = make_books(served[1], secret, pending_policy="wait")
    sandbox.billing_block = "08"
    refund_id = refunded(env, sandbox.seed_invoice(10_000, "EUR"), 2_500)
    # WHEN the books step runs: the request is made but not billed, so the step fails transiently (books-retry wait)
    with pytest.raises(TransientError):
        update_invoice(refund_id, recorder=env.recorder, books=books)
    assert env.repository.get(refund_id).status is S.REFUNDED
    (request,) = sandbox.documents()
    # AND WHEN a person releases the block and the step runs again
    sandbox.release_billing_block(request["CreditMemoRequest"])
    update_invoice(refund_id, recorder=env.recorder, books=books)
    # THEN the refund is complete with the posted credit memo, and SAP holds one request for it
    refund = env.repository.get(refund_id)
    assert refund.status is S.COMPLETED
    assert refund.credit_document is not None
    assert (refund.credit_document.kind, refund.credit_document.state) == (
        CreditDocumentKind.CREDIT_MEMO,
        CreditDocumentState.POSTED,
    )
    assert refund.credit_document.allocated_to_invoice == eur(2_500)
    assert len(sandbox.documents()) == 1


def test_with_the_record_policy_the_refund_completes_with_a_pending_credit_memo(
    env: World, served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    books = make_books(served[1], secret, pending_policy="record")
    sandbox.billing_block = "08"
    refund_id = refunded(env, sandbox.seed_invoice(10_000, "EUR"), 2_500)
    update_invoice(refund_id, recorder=env.recorder, books=books)
    refund = env.repository.get(refund_id)
    (request,) = sandbox.documents()
    assert refund.status is S.COMPLETED
    assert refund.credit_document is not None
    assert refund.credit_document.state is CreditDocumentState.PENDING
    assert refund.credit_document.document_id == request["CreditMemoRequest"]
    assert request["PurchaseOrderByCustomer"] == refund_id
