"""Transitional: what this deployment can carry out is read from the platform catalog by
``refundflow.domain.deployment`` (the rules moved there with the platform kit)."""

from __future__ import annotations

from refundflow.domain.deployment import AMOUNT_NOT_REPRESENTABLE, ensure_deployed, ensure_representable

__all__ = ["AMOUNT_NOT_REPRESENTABLE", "ensure_deployed", "ensure_representable"]
