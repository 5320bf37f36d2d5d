"""PayPal: Payments v2 capture refunds (and legacy v1 sale refunds), webhooks verified by PayPal's certificate."""
