"""Shopify (GraphQL Admin API): refunds of orders paid through Shopify Payments, found again by the note we write.

- ``graphql``: the queries and the ``refundCreate`` mutation sent, and Shopify's answers read exactly (pure);
- ``connector``: the ``RefundProvider`` (shared HTTP client);
- ``inbound``: the ``InboundPlatform`` intake calls (``X-Shopify-Hmac-SHA256``).
"""
