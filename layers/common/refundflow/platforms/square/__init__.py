"""Square (Refunds API v2): refunds of a payment by its id, read back by polling and by signed webhooks.

- ``amounts``: Square's Money objects, in minor units (pure);
- ``refunds``: Square's ``PaymentRefund`` in our vocabulary, and our reference in its ``reason`` (pure);
- ``signature``: the ``x-square-hmacsha256-signature`` scheme (pure);
- ``connector``: the ``RefundProvider`` (shared HTTP client);
- ``inbound``: the ``InboundPlatform`` intake calls.
"""
