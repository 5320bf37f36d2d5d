"""Xero: books platform (credit notes, allocations and cash refunds through the shared HTTP client)."""
