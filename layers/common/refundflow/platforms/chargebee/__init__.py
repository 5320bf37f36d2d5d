"""Chargebee (API v2): refunds of a subscription's invoice, read back as refund transactions.

- ``connector``: the ``RefundProvider`` (shared HTTP client, form-encoded, Basic auth with the API key);
- ``inbound``: the ``InboundPlatform`` intake calls (Basic credentials on the webhook URL; the body is news only).
"""
