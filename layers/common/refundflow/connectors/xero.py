"""Transitional: the names used before the platform kit (``refundflow.platforms.xero``). Removed once every
caller uses ``catalog.connector("xero")``; holds no logic of its own."""

from __future__ import annotations

from refundflow.platforms.xero.connector import (
    XeroBooks,
    XeroTokenSource,
    dump_json,
    from_xero_amount,
    load_json,
    to_xero_amount,
)
from refundflow.platforms.xero.connector import connector as xero_books

__all__ = ["XeroBooks", "XeroTokenSource", "dump_json", "from_xero_amount", "load_json", "to_xero_amount", "xero_books"]
