"""QuickBooks Online: books platform (refund receipts, credit memos applied to invoices; shared HTTP client)."""
