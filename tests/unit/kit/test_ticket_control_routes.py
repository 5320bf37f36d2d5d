"""A help desk simulator's control routes (``route_ticket_controls``): the TicketSandbox over HTTP, once for all."""

from __future__ import annotations

from typing import Any, ClassVar

from werkzeug.test import Client

from local.simulators.base import Simulator


class Desk(Simulator):
    name = "desk"
    TICKET_NOUN: ClassVar[str] = "case"

    def __init__(self) -> None:
        super().__init__()
        self.tickets: dict[str, dict[str, Any]] = {}
        self.route_ticket_controls()

    def seed_ticket(self, request: dict[str, Any]) -> str:
        if "payment_id" not in request:
            raise ValueError("payment_id is required")
        ticket_id = str(500 + len(self.tickets))
        self.tickets[ticket_id] = {"request": request, "actions": []}
        return ticket_id

    def agent_action(self, ticket_id: str, intent: str) -> None:
        if intent not in ("approve", "request", "withdraw"):
            raise ValueError(f"unknown intent {intent}")
        self.tickets[ticket_id]["actions"].append(intent)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        return {"ticket": self.tickets[ticket_id], "notes": [], "public": [], "labels": []}


def test_a_ticket_is_seeded_acted_on_and_shown_over_http() -> None:
    client = Client(Desk())
    seeded = client.post("/_control/tickets", json={"payment_id": "pi_1"})
    assert seeded.status_code == 201
    ticket_id = seeded.get_json()["id"]
    acted = client.post(f"/_control/tickets/{ticket_id}/agent-action", json={"intent": "approve"})
    assert acted.status_code == 200
    assert acted.get_json()["ticket"]["actions"] == ["approve"]
    assert client.get(f"/_control/tickets/{ticket_id}/view").get_json()["ticket"]["actions"] == ["approve"]


def test_what_the_sandbox_refuses_is_a_4xx_naming_the_desks_record() -> None:
    client = Client(Desk())
    assert client.post("/_control/tickets", data="[]", content_type="application/json").status_code == 400
    assert client.post("/_control/tickets", json={}).get_json() == {"error": "payment_id is required"}
    missing = client.get("/_control/tickets/999/view")
    assert (missing.status_code, missing.get_json()) == (404, {"error": "no case 999"})
    ticket_id = client.post("/_control/tickets", json={"payment_id": "pi_1"}).get_json()["id"]
    assert client.post(f"/_control/tickets/{ticket_id}/agent-action", json={"intent": "dance"}).status_code == 400
    assert client.post("/_control/tickets/999/agent-action", json={"intent": "approve"}).status_code == 404
