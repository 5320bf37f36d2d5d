"""Klarna (Order Management API v1): refunds per order, read back from the order; Klarna sends no refund webhooks.

- ``amounts``: Klarna's amounts, minor units of the order's currency (pure);
- ``connector``: the ``RefundProvider`` (shared HTTP client).
"""
