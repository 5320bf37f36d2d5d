"""``make demo``: the refund workflow's scenarios on the local stack, driven over HTTP like an integrator.

The workflow scenarios set up a payment in the Stripe sandbox and an invoice in the Xero sandbox (the
reference platforms) through their own APIs, post a signed refund request, act where a person or an outage
would, and check where the refund ends. Then every platform of the catalog whose simulator module offers
``DEMO_SCENARIOS`` (local/scenarios.py) runs its own. The timelines are printed; the exit code is 0 only if
every scenario ended as expected.
"""

from __future__ import annotations

import importlib
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from local.client import TERMINAL, RefundflowClient
from local.scenarios import Outcome, Scenario, ScenarioContext
from local.stack import MERCHANT_SHOP, DevStack, LocalSettings
from refundflow import catalog
from refundflow.domain.external import external_refund_id

Runnable = Callable[[], "Outcome | list[Outcome]"]


class Demo:
    def __init__(self, client: RefundflowClient, simulators: dict[str, Any] | None = None) -> None:
        """``simulators``: the stack's sandboxes by platform (the split-tender scenario seeds a PayPal capture)."""
        self.client = client
        self.simulators = simulators or {}
        self.run_id = uuid.uuid4().hex[:6]

    # ------------------------------------------------------------------ building blocks

    def request(
        self,
        name: str,
        payment_id: str,
        invoice_id: str | None,
        *,
        amount: int | None,
        currency: str = "EUR",
        reason: str = "damaged",
        reference: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "payment": {"provider": "stripe", "payment_id": payment_id},
            "reason": reason,
            "customer": {"email": f"{name}.{self.run_id}@example.com", "name": name.replace("-", " ").title()},
            "source": {"system": "returns-portal", "reference": reference or f"RMA-{name}-{self.run_id}"},
            "order": {"order_id": f"ORD-{name}-{self.run_id}"},
        }
        if amount is not None:
            body["amount"] = {"minor_units": amount, "currency": currency}
        if invoice_id:
            body["invoice"] = {"system": "xero", "invoice_id": invoice_id}
        return body

    def paid_order(self, name: str, minor_units: int, payment_method: str = "pm_card_visa") -> tuple[str, str]:
        payment = self.client.create_payment(minor_units, "EUR", payment_method)
        invoice = self.client.create_invoice(
            f"{name} {self.run_id}", f"Order {name}", Decimal(minor_units) / 100, "EUR", paid=True
        )
        return payment, str(invoice["InvoiceID"])

    def submit(self, outcome: Outcome, body: dict[str, Any], **kwargs: Any) -> str:
        response = self.client.request_refund(body, **kwargs)
        if response.status_code != 202:
            raise RuntimeError(f"refund request answered {response.status_code}: {response.text}")
        refund_id = str(response.json()["refund_id"])
        outcome.refund_ids.append(refund_id)
        return refund_id

    # ------------------------------------------------------------------ scenarios (issue 2)

    def full_refund(self) -> Outcome:
        outcome = Outcome("full refund", "COMPLETED, one Stripe refund of 45.00, a credit note of 45.00")
        payment, invoice = self.paid_order("full", 4500)
        refund_id = self.submit(outcome, self.request("full", payment, invoice, amount=None))
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        stripe_refunds = self.client.stripe_refunds(payment)
        outcome.check([r["amount"] for r in stripe_refunds] == [4500], f"Stripe refunds {stripe_refunds}")
        notes = self.client.credit_notes(refund_id)
        outcome.check(len(notes) == 1 and Decimal(str(notes[0]["Total"])) == Decimal("45.00"), f"credit notes {notes}")
        return outcome

    def partial_then_over_remainder(self) -> list[Outcome]:
        partial = Outcome("partial refund", "COMPLETED, 30.00 of 80.00 refunded")
        over = Outcome("second partial above the remainder", "REJECTED (exceeds_refundable_amount), nothing paid")
        payment, invoice = self.paid_order("partial", 8000)
        first = self.submit(partial, self.request("partial", payment, invoice, amount=3000))
        refund = self.client.wait_for(first, TERMINAL)
        partial.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        second = self.submit(over, self.request("partial-2", payment, invoice, amount=6000))
        refund = self.client.wait_for(second, TERMINAL)
        over.check(refund["status"] == "REJECTED", f"ended {refund['status']}")
        over.check(
            (refund.get("failure") or {}).get("code") == "exceeds_refundable_amount", f"failure {refund.get('failure')}"
        )
        amounts = [r["amount"] for r in self.client.stripe_refunds(payment)]
        over.check(amounts == [3000], f"Stripe refunds on the payment: {amounts}")
        return [partial, over]

    def same_delivery_twice(self) -> Outcome:
        outcome = Outcome(
            "the same delivery twice", "one refund id, the second answer is a duplicate, one Stripe refund"
        )
        payment, invoice = self.paid_order("twice", 2500)
        body = self.request("twice", payment, invoice, amount=None)
        delivery = f"msg_{uuid.uuid4().hex}"
        first = self.client.request_refund(body, delivery_id=delivery)
        second = self.client.request_refund(body, delivery_id=delivery)
        outcome.check(
            first.status_code == second.status_code == 202, f"answers {first.status_code}/{second.status_code}"
        )
        refund_id = str(first.json()["refund_id"])
        outcome.refund_ids.append(refund_id)
        outcome.check(second.json()["refund_id"] == refund_id, "the redelivery got another refund id")
        outcome.check(second.json()["duplicate"] is True, "the redelivery was not flagged as a duplicate")
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check(len(self.client.stripe_refunds(payment)) == 1, "more than one Stripe refund")
        return outcome

    def pending_then_succeeded(self) -> Outcome:
        outcome = Outcome("Stripe pending, then succeeded by webhook", "REFUND_PENDING, then COMPLETED")
        payment, invoice = self.paid_order("pending-ok", 4000, "pm_card_pendingRefund")
        refund_id = self.submit(outcome, self.request("pending-ok", payment, invoice, amount=None))
        refund = self.client.wait_for(refund_id, TERMINAL)
        statuses = [entry["to_status"] for entry in refund["timeline"]]
        outcome.check("REFUND_PENDING" in statuses, f"never pending: {statuses}")
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        return outcome

    def pending_then_failed(self) -> Outcome:
        outcome = Outcome("Stripe pending, then failed", "REFUND_PENDING, then FAILED, no credit note, amount released")
        payment, invoice = self.paid_order("pending-fail", 3500, "pm_card_pendingRefundFail")
        refund_id = self.submit(outcome, self.request("pending-fail", payment, invoice, amount=None))
        refund = self.client.wait_for(refund_id, TERMINAL)
        statuses = [entry["to_status"] for entry in refund["timeline"]]
        outcome.check("REFUND_PENDING" in statuses, f"never pending: {statuses}")
        outcome.check(refund["status"] == "FAILED", f"ended {refund['status']}")
        outcome.check(not self.client.credit_notes(refund_id), "a credit note was booked for a failed refund")
        # The failed refund gave its amount back: a new request for "everything left" gets all 35.00 again.
        body = self.request("pending-fail", payment, None, amount=None, reference=f"RMA-again-{self.run_id}")
        again = self.client.wait_for(self.submit(outcome, body), {"REFUND_PENDING", *TERMINAL})
        outcome.check(
            (again.get("amount") or {}).get("minor_units") == 3500, f"second refund amount {again.get('amount')}"
        )
        return outcome

    def books_down_after_money_moved(self) -> Outcome:
        outcome = Outcome("Xero unavailable after the money moved", "NEEDS_ATTENTION, then COMPLETED once Xero is back")
        payment, invoice = self.paid_order("books-down", 2000)
        fault = {"method": "PUT", "path": "^/api\\.xro/2\\.0/CreditNotes$", "status": 503, "times": -1}
        self.client.http.post(
            f"{self.client.api_url}/_sandbox/xero/_control/faults", json=fault, timeout=10
        ).raise_for_status()
        try:
            refund_id = self.submit(outcome, self.request("books-down", payment, invoice, amount=None))
            attention = self.client.wait_for(refund_id, {"NEEDS_ATTENTION", *TERMINAL}, timeout=60)
            outcome.check(attention["status"] == "NEEDS_ATTENTION", f"reached {attention['status']} instead")
            outcome.check(len(self.client.stripe_refunds(payment)) == 1, "the money did not move first")
        finally:
            self.client.http.delete(f"{self.client.api_url}/_sandbox/xero/_control/faults", timeout=10)
        refund = self.client.wait_for(refund_id, TERMINAL, timeout=60)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check(len(self.client.credit_notes(refund_id)) == 1, "not exactly one credit note")
        return outcome

    def refund_against_unpaid_invoice(self) -> Outcome:
        outcome = Outcome(
            "refund against an unpaid invoice",
            "COMPLETED; the credit note of 15.00 is allocated to the invoice, which owes 25.00 of 40.00; no cash out",
        )
        payment = self.client.create_payment(4000, "EUR", "pm_card_visa")
        invoice = self.client.create_invoice(
            f"unpaid {self.run_id}", "Order unpaid", Decimal("40.00"), "EUR", paid=False
        )
        invoice_id = str(invoice["InvoiceID"])
        refund_id = self.submit(outcome, self.request("unpaid", payment, invoice_id, amount=1500))
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        notes = self.client.credit_notes(refund_id)
        outcome.check(len(notes) == 1, f"credit notes {notes}")
        if len(notes) == 1:
            allocations = [(a["Invoice"]["InvoiceID"], Decimal(str(a["Amount"]))) for a in notes[0]["Allocations"]]
            outcome.check(allocations == [(invoice_id, Decimal("15.00"))], f"allocations {allocations}")
            outcome.check(not notes[0]["Payments"], f"cash paid out in the books: {notes[0]['Payments']}")
        owed = self.client.xero("GET", f"/Invoices/{invoice_id}").json()["Invoices"][0]["AmountDue"]
        outcome.check(Decimal(str(owed)) == Decimal("25.00"), f"the invoice owes {owed}")
        return outcome

    # ------------------------------------------------------------------ scenarios (issue 3)

    def approved_by_team_lead(self) -> Outcome:
        outcome = Outcome(
            "approval by a team lead", "PENDING_APPROVAL; an agent is refused (403); a team lead approves; COMPLETED"
        )
        payment, invoice = self.paid_order("approval", 75000)
        refund_id = self.submit(outcome, self.request("approval", payment, invoice, amount=None))
        pending = self.client.wait_for(refund_id, {"PENDING_APPROVAL", *TERMINAL})
        outcome.check(pending["status"] == "PENDING_APPROVAL", f"reached {pending['status']}")
        outcome.check(
            (pending.get("policy") or {}).get("required_role") == "team_lead", f"policy {pending.get('policy')}"
        )
        agent = self.client.decide(refund_id, self.client.approver_token("avery.agent", "agent"), "approve")
        outcome.check(agent.status_code == 403, f"an agent's approval answered {agent.status_code}")
        token = self.client.approver_token("lee.lead", "team_lead", refund_id=refund_id)
        approved = self.client.decide(refund_id, token, "approve", "customer is a regular, parcel photographed")
        outcome.check(approved.status_code == 200, f"approval answered {approved.status_code}: {approved.text}")
        again = self.client.decide(refund_id, token, "approve")
        outcome.check(
            again.status_code == 401 and again.json().get("code") == "token_spent",
            f"a second use of the token answered {again.status_code}: {again.text}",
        )
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check(
            (refund.get("approval") or {}).get("approver") == "lee.lead", f"approval {refund.get('approval')}"
        )
        outcome.check(len(self.client.stripe_refunds(payment)) == 1, "not exactly one Stripe refund")
        return outcome

    def rejected_by_approver(self) -> Outcome:
        outcome = Outcome("rejection by an approver", "PENDING_APPROVAL, then REJECTED; nothing paid, nothing booked")
        payment, invoice = self.paid_order("rejection", 12000)
        refund_id = self.submit(outcome, self.request("rejection", payment, invoice, amount=None))
        pending = self.client.wait_for(refund_id, {"PENDING_APPROVAL", *TERMINAL})
        outcome.check(pending["status"] == "PENDING_APPROVAL", f"reached {pending['status']}")
        token = self.client.approver_token("avery.agent", "agent")
        decided = self.client.decide(refund_id, token, "reject", "item was used; outside policy")
        outcome.check(decided.status_code == 200, f"rejection answered {decided.status_code}: {decided.text}")
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "REJECTED", f"ended {refund['status']}")
        outcome.check(not self.client.stripe_refunds(payment), "money moved for a rejected refund")
        outcome.check(not self.client.credit_notes(refund_id), "a credit note was booked for a rejected refund")
        return outcome

    # ------------------------------------------------------------------ scenarios (issue 12)

    def parcel_returned_to_sender(self) -> Outcome:
        outcome = Outcome(
            "a carrier reports a parcel returned to sender",
            "COMPLETED (reason delivery_failed, auto-approved), one Stripe refund of 38.00; the carrier's second "
            "report on the same parcel is a duplicate",
        )
        payment, invoice = self.paid_order("parcel", 3800)
        report: dict[str, Any] = {
            "shipment": {
                "carrier": "postnl",
                "tracking_number": f"3S{self.run_id.upper()}0001",
                "status": "failed",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
            "payment": {"provider": "stripe", "payment_id": payment},
            "customer": {"email": f"parcel.{self.run_id}@example.com", "name": "Parcel Customer"},
            "invoice": {"system": "xero", "invoice_id": invoice},
        }
        first = self.client.report_delivery_failure(report)
        if first.status_code != 202:
            raise RuntimeError(f"the delivery failure answered {first.status_code}: {first.text}")
        refund_id = str(first.json()["refund_id"])
        outcome.refund_ids.append(refund_id)
        report["shipment"] = {**report["shipment"], "status": "returned_to_sender"}
        second = self.client.report_delivery_failure(report)
        outcome.check(
            second.status_code == 202 and second.json().get("refund_id") == refund_id and second.json()["duplicate"],
            f"the second report answered {second.status_code}: {second.text}",
        )
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check(refund["reason"] == "delivery_failed", f"reason {refund['reason']}")
        stripe_refunds = self.client.stripe_refunds(payment)
        outcome.check([r["amount"] for r in stripe_refunds] == [3800], f"Stripe refunds {stripe_refunds}")
        return outcome

    def waits_for_its_return(self) -> Outcome:
        outcome = Outcome(
            "a refund waits for its return",
            "AWAITING_RETURN (wrong item, the local policy waits for the goods); the returns portal reports the "
            "parcel received; COMPLETED, one Stripe refund of 29.00, a credit note",
        )
        payment, invoice = self.paid_order("return", 2900)
        body = self.request("return", payment, invoice, amount=None, reason="wrong_item")
        refund_id = self.submit(outcome, body)
        waiting = self.client.wait_for(refund_id, {"AWAITING_RETURN", *TERMINAL})
        outcome.check(waiting["status"] == "AWAITING_RETURN", f"reached {waiting['status']}")
        outcome.check(self.client.stripe_refunds(payment) == [], "Stripe refunded before the goods were back")
        received = {
            "source": {"system": body["source"]["system"], "reference": body["source"]["reference"]},
            "status": "received",
            "occurred_at": datetime.now(UTC).isoformat(),
            "tracking_reference": f"3SRET{self.run_id.upper()}",
        }
        answer = self.client.report_return_update(received)
        outcome.check(
            answer.status_code == 202 and answer.json().get("return_status") == "received",
            f"the return update answered {answer.status_code}: {answer.text}",
        )
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check((refund.get("return") or {}).get("status") == "received", f"return {refund.get('return')}")
        stripe_refunds = self.client.stripe_refunds(payment)
        outcome.check([r["amount"] for r in stripe_refunds] == [2900], f"Stripe refunds {stripe_refunds}")
        return outcome

    def web_shop_refund_told_by_the_merchant(self) -> Outcome:
        outcome = Outcome(
            "the web shop's refund is told by the merchant's system",
            "COMPLETED, one refund.issued message of 35.00 EUR at the merchant's endpoint, signed, no e-mail",
        )
        payment, invoice = self.paid_order("web-shop", 3500)
        body = self.request("web-shop", payment, invoice, amount=None)
        body["source"]["system"] = MERCHANT_SHOP  # the source MerchantWebhookSources names locally
        refund_id = self.submit(outcome, body)
        refund = self.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not messages and time.monotonic() < deadline:
            answer = self.client.http.get(
                f"{self.client.api_url}/_sandbox/merchant/_control/messages",
                params={"refund_id": refund_id},
                timeout=10,
            )
            messages = answer.json() if answer.ok else []
            if not messages:
                time.sleep(0.5)
        outcome.check(len(messages) == 1, f"the merchant received {messages}")
        for message in messages:
            amount = message["data"].get("amount") or {}
            outcome.check(amount == {"minor_units": 3500, "currency": "EUR"}, f"amount {amount}")
            outcome.notes.append(
                f"merchant webhook {message['webhook_id']}: {message['type']}, {message['data']['message']}"
            )
        return outcome

    def recorded(self, refund_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """A refund recorded from a provider's webhook once it exists and is final (a books outage on the way is
        retried by the books platform's queue)."""
        deadline = time.monotonic() + timeout
        while self.client.http.get(f"{self.client.api_url}/refunds/{refund_id}", timeout=10).status_code == 404:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{refund_id} was never recorded")
            time.sleep(0.1)
        return self.client.wait_for(refund_id, TERMINAL, timeout=timeout)

    def refunded_in_the_stripe_dashboard(self) -> Outcome:
        outcome = Outcome(
            "a refund made in the Stripe Dashboard",
            "refundflow refunds 20.00 of 60.00; someone refunds 15.00 in the Dashboard: recorded (origin external), "
            "its credit note of 15.00 booked in Xero with no person, COMPLETED; Stripe holds two refunds",
        )
        payment, invoice = self.paid_order("dashboard", 6000)
        ours = self.submit(outcome, self.request("dashboard", payment, invoice, amount=2000))
        refund = self.client.wait_for(ours, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"our refund ended {refund['status']}")
        made = self.client.stripe_dashboard_refund(payment, 1500)
        external = external_refund_id("stripe", str(made["id"]))
        outcome.refund_ids.append(external)
        recorded = self.recorded(external)
        outcome.check(
            recorded["status"] == "COMPLETED", f"ended {recorded['status']} ({recorded.get('attention_reason')})"
        )
        outcome.check(recorded.get("origin") == "external", f"origin {recorded.get('origin')}")
        notes = self.client.credit_notes(external)
        outcome.check(len(notes) == 1 and Decimal(str(notes[0]["Total"])) == Decimal("15.00"), f"credit notes {notes}")
        for note in notes:
            outcome.notes.append(
                f"Xero credit note {note.get('CreditNoteNumber')} ({note['Total']} {note.get('CurrencyCode')}), "
                f"reference {note.get('Reference')!r}: booked by Xero's function from its queue, no person"
            )
        stripe_refunds = self.client.stripe_refunds(payment)
        outcome.check(sorted(r["amount"] for r in stripe_refunds) == [1500, 2000], f"Stripe refunds {stripe_refunds}")
        return outcome

    def split_tenders(self) -> Outcome:
        outcome = Outcome(
            "an order paid by card, PayPal and store credit (split tenders)",
            "60.00 paid as 30.00 by Stripe card, 20.00 through PayPal and 10.00 with store credit; 30.00 asked back "
            "proportionally: three legs, 15.00 to the card and 10.00 to PayPal (each its own refund) and 5.00 "
            "credited to the customer's store credit in refundflow's ledger; the parent COMPLETED with one credit "
            "note naming every leg",
        )
        paypal = self.simulators["paypal"].seed_payment(2000, "EUR")
        card = self.client.create_payment(3000, "EUR")
        invoice = self.client.create_invoice(f"split {self.run_id}", "Order split", Decimal("60.00"), "EUR", paid=True)
        body = self.request("split", card, str(invoice["InvoiceID"]), amount=3000)
        body.pop("payment")
        body["tenders"] = [
            {"payment": {"provider": "stripe", "payment_id": card}, "kind": "card"},
            {"payment": {"provider": "paypal", "payment_id": paypal["payment_id"]}, "kind": "wallet"},
            # What the order paid with store credit, as the shop's (signed) request says: the most it takes back.
            {"kind": "store_credit", "paid": {"minor_units": 1000, "currency": "EUR"}},
        ]
        body["allocation"] = "proportional"
        parent_id = self.submit(outcome, body)
        parent = self.client.wait_for(parent_id, TERMINAL | {"NEEDS_ATTENTION"}, timeout=90)
        outcome.check(parent["status"] == "COMPLETED", f"ended {parent['status']} ({parent.get('attention_reason')})")
        legs = [
            ((leg["payment"] or {}).get("provider", "store credit"), leg["amount"]["minor_units"], leg["status"])
            for leg in parent["legs"]
        ]
        outcome.check(
            legs == [("stripe", 1500, "succeeded"), ("paypal", 1000, "succeeded"), ("store credit", 500, "succeeded")],
            f"legs {legs}",
        )
        for leg in parent["legs"]:
            where = leg["refund_id"] or "refundflow's store-credit ledger, entry " + f"{parent_id}#leg{leg['index']}"
            outcome.notes.append(
                f"leg {leg['index'] + 1}: {leg['kind']} {leg['amount']['minor_units'] / 100:.2f} "
                f"{leg['amount']['currency']} {leg['status']} ({where})"
            )
        outcome.refund_ids += [leg["refund_id"] for leg in parent["legs"] if leg["refund_id"]]
        credited = [entry for entry in parent["timeline"] if entry["type"] == "StoreCreditCredited"]
        outcome.check(len(credited) == 1, f"store-credit entries {credited}")
        stripe_refunds = [refund["amount"] for refund in self.client.stripe_refunds(card)]
        outcome.check(stripe_refunds == [1500], f"Stripe refunds {stripe_refunds}")
        held = [r for r in self.simulators["paypal"].refunds() if paypal["payment_id"] in str(r)]
        outcome.check([r["amount"]["value"] for r in held] == ["10.00"], f"PayPal refunds {held}")
        notes = self.client.credit_notes(parent_id)
        outcome.check(len(notes) == 1 and Decimal(str(notes[0]["Total"])) == Decimal("30.00"), f"credit notes {notes}")
        outcome.check(
            bool(notes) and "store credit 5.00 EUR" in str(notes[0].get("Reference")), f"credit note {notes[:1]}"
        )
        return outcome

    def scenarios(self) -> list[Runnable]:
        """Independent scenarios, run concurrently."""
        return [
            self.full_refund,
            self.web_shop_refund_told_by_the_merchant,
            self.partial_then_over_remainder,
            self.same_delivery_twice,
            self.pending_then_succeeded,
            self.pending_then_failed,
            self.refund_against_unpaid_invoice,
            self.approved_by_team_lead,
            self.rejected_by_approver,
            self.parcel_returned_to_sender,
            self.waits_for_its_return,
            self.refunded_in_the_stripe_dashboard,
            *([self.split_tenders] if "paypal" in self.simulators else []),
        ]

    def exclusive_scenarios(self) -> list[Runnable]:
        """Scenarios that take a sandbox down for everyone: run alone, after the others."""
        return [self.books_down_after_money_moved]


def platform_scenarios(stack: DevStack, client: RefundflowClient) -> tuple[list[Runnable], list[Runnable]]:
    """(shared, exclusive) scenarios of every catalog platform whose simulator module has DEMO_SCENARIOS."""
    shared: list[Runnable] = []
    exclusive: list[Runnable] = []
    for entry in catalog.platforms():
        if entry.simulator is None or entry.name not in stack.simulators:
            continue
        module = importlib.import_module(entry.simulator.partition(":")[0])
        scenarios: list[Scenario] = list(getattr(module, "DEMO_SCENARIOS", []))
        for scenario in scenarios:
            context = ScenarioContext(
                client, entry.name, stack.simulators[entry.name], reconcile=stack.reconcile_settlement
            )
            runnable = _bound(scenario, context)
            (exclusive if scenario.exclusive else shared).append(runnable)
    return shared, exclusive


def _bound(scenario: Scenario, context: ScenarioContext) -> Runnable:
    def run() -> Outcome:
        return scenario(context)

    run.__name__ = f"{context.platform}: {scenario.name}"
    return run


def run_all(scenarios: list[Runnable], workers: int) -> list[Outcome]:
    results: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(scenario) for scenario in scenarios]
        for scenario, future in zip(scenarios, futures, strict=True):
            try:
                produced = future.result(timeout=180)
            except Exception as error:
                produced = Outcome(scenario.__name__, "no exception", problems=[f"{type(error).__name__}: {error}"])
            results.extend(produced if isinstance(produced, list) else [produced])
    return results


def print_timeline(client: RefundflowClient, refund_id: str) -> None:
    refund = client.refund(refund_id)
    amount = refund.get("amount") or refund.get("requested_amount") or {}
    money = f"{Decimal(amount['minor_units']) / 100:.2f} {amount['currency']}" if amount else "full amount"
    chain = "intact" if refund["audit"]["intact"] else "BROKEN"
    print(f"    {refund_id}  {money}  -> {refund['status']}  (audit chain {chain})")
    start = datetime.fromisoformat(refund["timeline"][0]["at"].replace("Z", "+00:00"))
    for entry in refund["timeline"]:
        at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
        label = entry["type"].replace("StatusChanged:", "-> ")
        detail = (
            entry["details"].get("rule_id")
            or entry["details"].get("code")
            or entry["details"].get("decision")
            or (f"return {entry['details']['status']}" if entry["type"] == "ReturnUpdated" else "")
        )
        print(f"      +{(at - start).total_seconds():6.2f}s  {label:<28} {entry['actor']:<32} {detail}")


def main(argv: list[str] | None = None) -> int:
    """``--only NAME`` (repeatable): only the scenarios of those catalog platforms (not the workflow's own).
    ``--parameter NAME=VALUE`` (repeatable): a template parameter of the local stack other than its catalog
    ``local`` value, e.g. ``SapCreditDocument=customer_return``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="PLATFORM", help="only this platform's")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE", help="a stack parameter")
    arguments = parser.parse_args(argv)
    only = set(arguments.only)
    parameters = dict(item.partition("=")[::2] for item in arguments.parameter)
    started = time.monotonic()
    settings = LocalSettings(
        api_port=0,
        aws_port=0,
        refund_outcome_wait_seconds=10,
        books_retry_wait_seconds=2,
        extra_parameters=parameters,
    )
    with DevStack(settings) as stack:
        client = RefundflowClient(stack.api_url)
        demo = Demo(client, simulators=stack.simulators)
        print(f"refundflow demo: local stack at {stack.api_url} (moto at {stack.aws_endpoint})\n")
        shared, exclusive = platform_scenarios(stack, client)
        if only:
            shared = [run for run in shared if run.__name__.split(":")[0] in only]
            exclusive = [run for run in exclusive if run.__name__.split(":")[0] in only]
        workflow = ([], []) if only else (demo.scenarios(), demo.exclusive_scenarios())
        results = run_all([*workflow[0], *shared], workers=4)
        results += run_all([*workflow[1], *exclusive], workers=1)
        failed = 0
        for outcome in results:
            ok = not outcome.problems
            failed += not ok
            print(f"[{'ok' if ok else 'FAILED'}] {outcome.name}: expected {outcome.expected}")
            for refund_id in dict.fromkeys(outcome.refund_ids):
                print_timeline(client, refund_id)
            for note in outcome.notes:
                print(f"    note: {note}")
            for problem in outcome.problems:
                print(f"    problem: {problem}")
            print()
        counts = dict(stack.functions.invocations)
    print(f"{len(results) - failed}/{len(results)} scenarios ended as expected in {time.monotonic() - started:.1f}s")
    print(f"Lambda invocations: {counts}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
