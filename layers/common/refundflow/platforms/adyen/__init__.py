"""Adyen (Checkout API v71): refunds on the payment's PSP reference, outcomes only by signed notifications.

- ``signature``: HMAC verification of notification items (pure);
- ``notifications``: ``NotificationRequest`` batches parsed and reduced to provider events (pure);
- ``connector``: the ``RefundProvider`` (shared HTTP client);
- ``inbound``: the ``InboundPlatform`` intake calls.
"""
