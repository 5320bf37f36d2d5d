"""The source system a delivery was verified for: what a Standard Webhooks verification yields (standard library
only, so that the request intake imports no model: README, Cost per refund, "Cold import")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VerifiedSource:
    """The source system whose signing secret verified a delivery. What it may assert (an approver's role)
    is the policy's ``sources:`` section, looked up by ``name`` when the refund is decided."""

    name: str
