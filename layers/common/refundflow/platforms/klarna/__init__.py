"""Klarna (Order Management API v1): refunds per order, read back from the order; Klarna sends no refund webhooks.

- ``amounts``: Klarna's transaction currencies, minor units (pure);
- ``connector``: the ``RefundProvider`` (shared HTTP client).
"""
