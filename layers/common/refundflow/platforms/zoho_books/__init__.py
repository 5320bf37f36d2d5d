"""Zoho Books: books platform (credit notes applied to the invoice or refunded, through the shared HTTP client)."""
