"""Braintree (GraphQL API): refunds of settled transactions, voids of unsettled ones, found again by our order id.

- ``graphql``: the queries and mutations sent, and Braintree's answers read exactly (pure);
- ``webhooks``: ``bt_signature`` / ``bt_payload`` verification and the notification XML (pure);
- ``connector``: the ``RefundProvider`` (shared HTTP client);
- ``inbound``: the ``InboundPlatform`` intake calls.
"""
