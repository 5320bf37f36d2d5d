"""WooCommerce: a shop that is both a refund trigger and a refund channel. The order is the "ticket".

- ``inbound``: the ``order.updated`` webhook, X-WC-Webhook-Signature (base64 HMAC-SHA256 of the raw body) checked by
  intake with the verification secret only; an order that carries a refund request meta field is help-desk news for
  ``<stack>-ticket-woocommerce``, an order with refunds is payment news for ``<stack>-refund-woocommerce``;
- ``connector``: one ``WooCommerceConnector`` that is both the ``RefundProvider`` (``POST /orders/{id}/refunds``
  through the order's gateway, found again by our reference: WooCommerce takes no idempotency key) and the
  ``TicketPlatform`` (reads the order, writes a private order note and a meta field back);
- ``mapping.yaml``: the default reading of an order's refund request (merchants override it: README).
"""
