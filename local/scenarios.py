"""Demo scenarios per platform. A simulator module may offer ``DEMO_SCENARIOS: list[Scenario]``; `make demo`
finds them through the catalog (``simulator: local.simulators.<name>:<Class>``) and runs them beside the
workflow scenarios, so a new platform brings its own demo without an edit to local/demo.py.

``ticket_scenarios`` builds a help desk's from its ``TicketSandbox`` (``seed_ticket``, ``agent_action``,
``ticket_view``): an approval by a team lead in the ticket, an agent's request the policy decides, an approval
withdrawn before money moved, and a card number typed into a ticket field.

``payment_scenarios`` builds the usual ones for a payment platform from its sandbox's conformance controls
(``PaymentSandbox`` in local/simulators/base.py: ``seed_payment``, ``settle_refund``, ``inject_fault``,
``refunds``): a full refund, a partial one, an asynchronous success and a late failure (for sandboxes that
hold a refund open until told), and an answer lost after the platform made the refund.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.client import TERMINAL, RefundflowClient
from refundflow import catalog


@dataclass
class Outcome:
    name: str
    expected: str
    refund_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


@dataclass(frozen=True)
class ScenarioContext:
    """What a scenario works with: the integrator's client, the platform's sandbox (in this process) and a run
    id that keeps its references apart from other runs."""

    client: RefundflowClient
    platform: str
    simulator: Any
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    # Drops a settlement or bank file and runs its reconciliation (DevStack.reconcile_settlement): the demo's bank.
    reconcile: Callable[[str, bytes], dict[str, Any]] | None = None

    def request(
        self, name: str, payment: Mapping[str, Any], *, amount: int | None = None, currency: str = "EUR"
    ) -> dict[str, Any]:
        """A refund request for ``payment`` (a seeded payment's ``{"provider", "payment_id", "locator"}``)."""
        reference = {key: value for key, value in payment.items() if key != "locator" or value}
        body: dict[str, Any] = {
            "payment": {**reference, "provider": self.platform},
            "reason": "damaged",
            "customer": {"email": f"{name}.{self.run_id}@example.com", "name": name.replace("-", " ").title()},
            "source": {"system": "returns-portal", "reference": f"RMA-{self.platform}-{name}-{self.run_id}"},
        }
        if amount is not None:
            body["amount"] = {"minor_units": amount, "currency": currency}
        return body

    def submit(self, outcome: Outcome, body: dict[str, Any]) -> str:
        response = self.client.request_refund(body)
        if response.status_code != 202:
            raise RuntimeError(f"refund request answered {response.status_code}: {response.text}")
        refund_id = str(response.json()["refund_id"])
        outcome.refund_ids.append(refund_id)
        return refund_id

    def wait_for_provider_refund(self, refund_id: str, timeout: float = 60.0) -> str | None:
        """The platform's id of our refund once it has one (None if the refund ends without one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            refund = self.client.refund(refund_id)
            if refund.get("provider_refund_id"):
                return str(refund["provider_refund_id"])
            if refund["status"] in TERMINAL:
                return None
            time.sleep(0.02)
        raise TimeoutError(f"{refund_id} has no refund at {self.platform} after {timeout}s")

    def platform_refunds(self, provider_refund_id: str | None) -> list[dict[str, Any]]:
        """The sandbox's refund objects that name ``provider_refund_id`` (none when it is None)."""
        if provider_refund_id is None:
            return []
        found: list[dict[str, Any]] = [
            refund for refund in self.simulator.refunds() if provider_refund_id in json.dumps(refund, default=str)
        ]
        return found


@dataclass(frozen=True)
class Scenario:
    """One demo scenario; ``exclusive`` ones change the sandbox for everyone (faults) and run alone."""

    name: str
    expected: str
    run: Callable[[ScenarioContext, Outcome], None]
    exclusive: bool = False

    def __call__(self, context: ScenarioContext) -> Outcome:
        outcome = Outcome(f"{context.platform}: {self.name}", self.expected)
        self.run(context, outcome)
        return outcome


def payment_scenarios(
    platform: str,
    *,
    currency: str = "EUR",
    amount_minor: int = 4500,
    async_seed: Mapping[str, Any] | None = None,
    unknown_outcome: str | None = "COMPLETED",
) -> list[Scenario]:
    """The usual scenarios of a payment platform. ``async_seed``: the ``seed_payment`` keywords whose refunds
    stay open until ``settle_refund`` (None: no asynchronous scenarios). ``unknown_outcome``: where a refund ends
    when its answer is lost after the platform made it (its capabilities decide: COMPLETED when it can find
    or resend safely, NEEDS_ATTENTION otherwise; None: not demonstrated)."""

    def full(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(amount_minor, currency)
        refund = context.client.wait_for(context.submit(outcome, context.request("full", payment)), TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check((refund.get("amount") or {}).get("minor_units") == amount_minor, f"amount {refund.get('amount')}")
        held = context.platform_refunds(refund.get("provider_refund_id"))
        outcome.check(len(held) == 1, f"{len(held)} refunds at {platform} for {refund.get('provider_refund_id')}")

    def partial(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(amount_minor, currency)
        part = amount_minor // 3
        body = context.request("partial", payment, amount=part, currency=currency)
        refund = context.client.wait_for(context.submit(outcome, body), TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check((refund.get("amount") or {}).get("minor_units") == part, f"amount {refund.get('amount')}")

    def settled_later(succeeded: bool) -> Callable[[ScenarioContext, Outcome], None]:
        def run(context: ScenarioContext, outcome: Outcome) -> None:
            payment = context.simulator.seed_payment(amount_minor, currency, **dict(async_seed or {}))
            name = "async-ok" if succeeded else "late-fail"
            refund_id = context.submit(outcome, context.request(name, payment))
            # Decide it at the platform as soon as the platform holds it (waiting on state, not on a delay).
            held = context.wait_for_provider_refund(refund_id)
            if held is None:
                outcome.check(False, "the platform never held a refund for it")
                return
            context.simulator.settle_refund(held, succeeded)
            refund = context.client.wait_for(refund_id, TERMINAL, timeout=90)
            expected = "COMPLETED" if succeeded else "FAILED"
            outcome.check(refund["status"] == expected, f"ended {refund['status']}")
            statuses = [entry["to_status"] for entry in refund["timeline"]]
            outcome.check("REFUND_PENDING" in statuses, f"never pending: {statuses}")
            if "NEEDS_ATTENTION" in statuses:
                outcome.notes.append("the workflow stopped waiting before the news came; the late news settled it")

        return run

    def answer_lost(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(amount_minor, currency)
        context.simulator.inject_fault("create_refund", "timeout_after_commit")
        refund_id = context.submit(outcome, context.request("answer-lost", payment))
        refund = context.client.wait_for(refund_id, TERMINAL | {"NEEDS_ATTENTION"}, timeout=90)
        outcome.check(refund["status"] == unknown_outcome, f"ended {refund['status']}")
        held = context.platform_refunds(refund.get("provider_refund_id"))
        if refund["status"] == "COMPLETED":
            outcome.check(len(held) == 1, f"{len(held)} refunds at {platform}: paid more than once?")

    scenarios = [
        Scenario("full refund", f"COMPLETED, one refund of the whole payment at {platform}", full),
        Scenario("partial refund", "COMPLETED for a third of the payment", partial),
    ]
    if async_seed is not None:
        scenarios += [
            Scenario(
                "asynchronous success", "REFUND_PENDING, then COMPLETED when the platform says so", settled_later(True)
            ),
            Scenario("late failure", "REFUND_PENDING, then FAILED, amount released", settled_later(False)),
        ]
    if unknown_outcome is not None:
        scenarios.append(
            Scenario(
                "answer lost after the refund was made",
                f"{unknown_outcome}; never a second refund at the platform",
                answer_lost,
                exclusive=True,
            )
        )
    return scenarios


def books_scenarios(system: str, *, currency: str = "EUR", amount_minor: int = 4500) -> list[Scenario]:
    """The usual scenarios of a books platform: a paid invoice refunded in full (a credit document with the cash
    refunded) and an unpaid invoice credited in part (a credit document set against what the invoice owes). The
    money moves at the Stripe sandbox; the books sandbox is ``context.simulator`` (``BooksSandbox``). Each checks
    that exactly one credit document of the books names our refund (its external reference)."""

    def credited(context: ScenarioContext, outcome: Outcome, name: str, *, paid: bool, amount: int) -> None:
        payment_id = context.client.create_payment(amount_minor, currency)
        invoice_id = context.simulator.seed_invoice(amount_minor, currency, paid=paid)
        body = context.request(name, {"provider": "stripe", "payment_id": payment_id}, amount=amount, currency=currency)
        body["payment"]["provider"] = "stripe"
        body["invoice"] = {"system": system, "invoice_id": invoice_id}
        refund_id = context.submit(outcome, body)
        refund = context.client.wait_for(refund_id, TERMINAL | {"NEEDS_ATTENTION"}, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']} ({refund.get('attention_reason')})")
        documents = [doc for doc in context.simulator.documents() if refund_id in json.dumps(doc, default=str)]
        outcome.check(len(documents) == 1, f"{len(documents)} credit documents at {system} name {refund_id}")

    def paid_in_full(context: ScenarioContext, outcome: Outcome) -> None:
        credited(context, outcome, "books-paid", paid=True, amount=amount_minor)

    def unpaid_in_part(context: ScenarioContext, outcome: Outcome) -> None:
        credited(context, outcome, "books-unpaid", paid=False, amount=amount_minor // 3)

    return [
        Scenario(
            "paid invoice refunded", f"COMPLETED, one credit document at {system} with the cash refund", paid_in_full
        ),
        Scenario("unpaid invoice credited in part", f"COMPLETED, one credit document at {system}", unpaid_in_part),
    ]


# ---------------------------------------------------------------------------- help desks

CARD_NUMBER = "4111 1111 1111 1111"


def ticket_refund_id(platform: str, ticket_id: str) -> str:
    """The refund a help desk's ticket asks for (intake derives it from the help desk and the ticket)."""
    from refundflow.domain.intake import source_refund_id

    return source_refund_id(platform, platform, ticket_id)


def wait_until_stored(context: ScenarioContext, refund_id: str, timeout: float = 30.0) -> None:
    """Until refundflow holds the refund (the help desk's delivery is handled after the agent's action returns)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = context.client.http.get(f"{context.client.api_url}/refunds/{refund_id}", timeout=10)
        if answer.status_code != 404:
            answer.raise_for_status()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{refund_id} was not stored within {timeout}s")
        time.sleep(0.05)


def wait_for_notes(
    context: ScenarioContext, ticket_id: str, done: Callable[[list[str]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """The ticket as a person sees it once its internal notes satisfy ``done`` (a bound, not a pace)."""
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = context.simulator.ticket_view(ticket_id)
        if done(list(view["notes"])) or time.monotonic() > deadline:
            return view
        time.sleep(0.05)


def ticket_scenarios(platform: str, *, currency: str = "EUR") -> list[Scenario]:
    """The usual scenarios of a help desk, generic over its sandbox (``TicketSandbox`` in local/simulators/base.py:
    ``seed_ticket``, ``agent_action``, ``ticket_view``). The money moves at the Stripe sandbox; the ticket's
    notes and labels are read as a person sees them. Each scenario seeds its own ticket and payment."""

    def seed(context: ScenarioContext, name: str, payment_id: str, **request: Any) -> str:
        ticket_id: str = context.simulator.seed_ticket(
            {
                "payment_provider": "stripe",
                "payment_id": payment_id,
                "reason": "damaged",
                "order_id": f"ORD-{platform}-{name}-{context.run_id}",
                "currency": currency,
                "customer_email": f"{name}.{platform}.{context.run_id}@example.com",
                "customer_name": name.replace("-", " ").title(),
                "subject": f"Refund for my {name.replace('-', ' ')} order",
                **request,
            }
        )
        return ticket_id

    def notes_once(outcome: Outcome, notes: list[str]) -> None:
        markers = [note[note.rfind("[refundflow:") :] for note in notes if "[refundflow:" in note]
        outcome.check(len(markers) == len(set(markers)), f"a refund event was written twice: {markers}")

    def approved_by_team_lead(context: ScenarioContext, outcome: Outcome) -> None:
        payment_id = context.client.create_payment(20_000, currency)
        ticket_id = seed(context, "team-lead-approval", payment_id, amount="120.50", approver_role="team_lead")
        refund_id = ticket_refund_id(platform, ticket_id)
        outcome.refund_ids.append(refund_id)
        context.simulator.agent_action(ticket_id, "approve")
        wait_until_stored(context, refund_id)
        refund = context.client.wait_for(refund_id, TERMINAL, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check(refund.get("amount") == {"minor_units": 12050, "currency": currency}, f"{refund.get('amount')}")
        approval = refund.get("approval") or {}
        outcome.check(approval.get("role") == "team_lead", f"approval {approval}")
        stripe_refunds = context.client.stripe_refunds(payment_id)
        outcome.check(
            [(item["amount"], item["status"]) for item in stripe_refunds] == [(12050, "succeeded")],
            f"Stripe refunds {stripe_refunds}",
        )
        view = wait_for_notes(context, ticket_id, lambda notes: any("Refund completed" in note for note in notes))
        notes = view["notes"]
        outcome.check(bool(notes) and notes[0].startswith("Refund requested"), f"first note: {notes[:1]}")
        outcome.check(bool(notes) and notes[-1].startswith("Refund completed"), f"last note: {notes[-1:]}")
        provider_refund_id = str(refund.get("provider_refund_id"))
        outcome.check(any(provider_refund_id in note for note in notes), f"no note names {provider_refund_id}")
        outcome.check(any("completed" in str(label) for label in view["labels"]), f"labels {view['labels']}")
        notes_once(outcome, notes)
        # The customer's one message: a public reply where the desk has one (else notify e-mails them).
        replies = [text for text in view["public"] if f"refundflow:reply:{refund_id}:" in text]
        entry = catalog.platform(platform).ticket
        if entry is not None and "public_reply" in entry.writes:
            outcome.check(len(replies) == 1 and "120.50" in replies[0], f"public replies {replies}")
        else:
            outcome.check(replies == [], f"a desk without a public reply replied: {replies}")
        outcome.notes.append(f"ticket {ticket_id}: {len(notes)} notes, {len(replies)} public reply, {view['labels']}")

    def agents_request(context: ScenarioContext, outcome: Outcome) -> None:
        payment_id = context.client.create_payment(6_000, currency)
        ticket_id = seed(context, "agent-request", payment_id, amount="25.00", approver_role="agent")
        refund_id = ticket_refund_id(platform, ticket_id)
        outcome.refund_ids.append(refund_id)
        context.simulator.agent_action(ticket_id, "request")
        wait_until_stored(context, refund_id)
        refund = context.client.wait_for(refund_id, TERMINAL, timeout=90)
        # 25.00 for a damaged item is within the default policy's automatic approval
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check(
            not refund.get("approval") or refund["approval"].get("channel") != platform, "approved by the ticket"
        )
        view = wait_for_notes(context, ticket_id, lambda notes: any("Refund completed" in note for note in notes))
        outcome.check(any("Refund completed" in note for note in view["notes"]), f"notes {view['notes']}")
        notes_once(outcome, view["notes"])

    def withdrawn(context: ScenarioContext, outcome: Outcome) -> None:
        payment_id = context.client.create_payment(90_000, currency)
        # 800.00 asked for in the ticket: above automatic approval, so the refund waits for a person
        ticket_id = seed(context, "withdrawn", payment_id, amount="800.00", approver_role="agent")
        refund_id = ticket_refund_id(platform, ticket_id)
        outcome.refund_ids.append(refund_id)
        context.simulator.agent_action(ticket_id, "request")
        wait_until_stored(context, refund_id)
        waiting = context.client.wait_for(refund_id, {"PENDING_APPROVAL"} | TERMINAL, timeout=60)
        outcome.check(waiting["status"] == "PENDING_APPROVAL", f"was {waiting['status']} before the withdrawal")
        context.simulator.agent_action(ticket_id, "withdraw")
        refund = context.client.wait_for(refund_id, TERMINAL, timeout=60)
        outcome.check(refund["status"] == "REJECTED", f"ended {refund['status']}")
        code = (refund.get("failure") or {}).get("code")
        outcome.check(code == "approval_withdrawn", f"failure {refund.get('failure')}")
        outcome.check(context.client.stripe_refunds(payment_id) == [], "money moved")
        view = wait_for_notes(context, ticket_id, lambda notes: any("Refund rejected" in note for note in notes))
        rejected = [note for note in view["notes"] if note.startswith("Refund rejected")]
        outcome.check(
            len(rejected) == 1 and "approval withdrawn" in rejected[0], f"the ticket does not say so: {view['notes']}"
        )
        notes_once(outcome, view["notes"])

    def card_number(context: ScenarioContext, outcome: Outcome) -> None:
        payment_id = context.client.create_payment(5_000, currency)
        ticket_id = seed(context, "card-number", payment_id, amount="10.00", order_id=CARD_NUMBER)
        refund_id = ticket_refund_id(platform, ticket_id)
        webhooks = context.simulator.webhooks
        webhooks.wait_idle(timeout=30)
        before = len(webhooks.deliveries)
        context.simulator.agent_action(ticket_id, "approve")
        outcome.check(webhooks.wait_idle(timeout=30), "the delivery was still being retried")
        answers = [delivery.last_status for delivery in webhooks.deliveries[before:]]
        outcome.check(
            bool(answers) and all(status is not None and 400 <= status < 500 for status in answers),
            f"the delivery was answered {answers}",
        )
        stored = context.client.http.get(f"{context.client.api_url}/refunds/{refund_id}", timeout=10)
        outcome.check(stored.status_code == 404, f"GET /refunds/{refund_id} answered {stored.status_code}")
        # The agent is told why in the ticket (the field, never its value), once, and no refund state is set.
        view = wait_for_notes(context, ticket_id, lambda notes: len(notes) >= 1)
        outcome.check(len(view["notes"]) == 1, f"notes {view['notes']}")
        note = view["notes"][0] if view["notes"] else ""
        outcome.check(note.startswith("Refund request not taken"), f"the note says {note!r}")
        # (the mapped request's field, or where intake found it in the delivery when the desk sent the field along:
        # the sandbox's ORDER_ID_FIELD, where the platform's own object carries the order id, e.g. WooCommerce's number)
        field_name = str(getattr(context.simulator, "ORDER_ID_FIELD", "order_id"))
        outcome.check(field_name in note, f"the note does not name the field {field_name}: {note!r}")
        outcome.check(CARD_NUMBER not in note and CARD_NUMBER[-8:] not in note, "the note repeats the card number")
        outcome.check(view["labels"] == [], f"a refund state was set: {view['labels']}")

    scenarios = [
        Scenario(
            "team lead approves in the ticket",
            "COMPLETED, 120.50 refunded at Stripe; the ticket's notes from requested to completed, each once",
            approved_by_team_lead,
        ),
        Scenario("an agent's refund request", "the policy approves it: COMPLETED, the ticket told", agents_request),
        Scenario(
            "approval withdrawn before money moved",
            "REJECTED approval_withdrawn, nothing refunded, the ticket says so",
            withdrawn,
        ),
        Scenario(
            "a card number typed into a ticket field",
            "the delivery refused 4xx, nothing stored; the ticket's note names the field, never the number",
            card_number,
            exclusive=True,
        ),
    ]
    if not names_approvers(platform):
        # A platform whose tickets name no approver (a shop's return): nobody approves in it, the policy decides.
        scenarios = [item for item in scenarios if item.name != "team lead approves in the ticket"]
    return scenarios


def names_approvers(platform: str) -> bool:
    """Whether the platform's default mapping reads an approver from its tickets."""
    from importlib import resources

    import yaml

    text = resources.files(f"refundflow.platforms.{platform}").joinpath("mapping.yaml").read_text(encoding="utf-8")
    return bool((yaml.safe_load(text) or {}).get("approver"))


# ---------------------------------------------------------------------------- Shopify (a shop: trigger and refunds)


def shopify_scenarios(*, currency: str = "EUR") -> list[Scenario]:
    """A shop's own scenarios (the Shopify sandbox is ``context.simulator``): a return processed in Shopify (every
    line back) refunds its Shopify Payments order through Shopify, once, the order told; a refund a person made in
    the Shopify admin is recorded as a refund made outside refundflow."""

    def processed_return(context: ScenarioContext, outcome: Outcome) -> None:
        ticket_id = context.simulator.seed_ticket(
            {
                "payment_provider": "shopify",
                "amount": "35.00",
                "currency": currency,
                "reason": "damaged",
                "order_id": f"#SIM-{context.run_id}",
                "customer_email": f"return.{context.run_id}@example.com",
                "customer_name": "Grace Hopper",
            }
        )
        refund_id = ticket_refund_id("shopify", ticket_id)
        outcome.refund_ids.append(refund_id)
        context.simulator.process_return(ticket_id)
        wait_until_stored(context, refund_id)
        refund = context.client.wait_for(refund_id, TERMINAL, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        outcome.check(refund.get("amount") == {"minor_units": 3500, "currency": currency}, f"{refund.get('amount')}")
        ours = [item for item in context.simulator.refunds() if refund_id in str(item.get("note"))]
        outcome.check(len(ours) == 1, f"{len(ours)} Shopify refunds carry {refund_id}")
        view = wait_for_notes(context, ticket_id, lambda notes: any("Refund completed" in note for note in notes))
        outcome.check(any("completed" in str(label) for label in view["labels"]), f"labels {view['labels']}")

    def admin_refund(context: ScenarioContext, outcome: Outcome) -> None:
        from refundflow.domain.external import external_refund_id

        order_id = context.simulator.seed_payment(6_000, currency)["payment_id"]
        made = context.simulator.admin_refund(order_id, 2_000)
        refund_id = external_refund_id("shopify", made["id"])
        outcome.refund_ids.append(refund_id)
        wait_until_stored(context, refund_id)
        refund = context.client.refund(refund_id)
        outcome.check(refund.get("origin") == "external", f"origin {refund.get('origin')}")
        outcome.check(refund.get("amount") == {"minor_units": 2000, "currency": currency}, f"{refund.get('amount')}")

    return [
        Scenario(
            "a return processed in Shopify",
            "COMPLETED through Shopify Payments, one Shopify refund with our note, the order tagged completed",
            processed_return,
        ),
        Scenario("a refund made in the Shopify admin", "recorded once, origin external", admin_refund),
    ]


def camt053_crediting(payout_id: str, minor_units: int, currency: str = "EUR") -> bytes:
    """A camt.053 statement booked today whose second entry credits the payout (the first is other business): what
    the merchant's bank sends the day a payout arrives (ISO 20022 BkToCstmrStmt; amounts in a two-decimal currency)."""
    booked = datetime.now(UTC).date().isoformat()
    entries = "".join(
        f'<Ntry><Amt Ccy="{currency}">{amount // 100}.{amount % 100:02d}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{booked}</Dt></BookgDt><AcctSvcrRef>{ref}</AcctSvcrRef>"
        f"<AddtlNtryInf>{text}</AddtlNtryInf></Ntry>"
        for ref, amount, text in (("B-rent", 120_000, "RENT RETURN"), (f"B-{payout_id}", minor_units, payout_id))
    )
    return (
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        f"<Stmt>{entries}</Stmt></BkToCstmrStmt></Document>"
    ).encode()
