"""Intercom: a webhook topic subscription of the merchant's Developer Hub app (``conversation_part.tag.created``)
tells us when an agent tags a conversation ``refund_approved`` / ``refund_requested`` / ``refund_cancelled``;
every refund event goes back to the conversation as an internal note and a conversation attribute.

- ``inbound``: the notification's ``X-Hub-Signature`` (HMAC-SHA1 with the app's client secret; intake only);
- ``connector``: the ``TicketPlatform`` (REST API 2.16 through the shared HTTP client; its access token only);
- ``mapping.yaml``: the default reading of a conversation (merchants override it: README, Help desks).
"""
