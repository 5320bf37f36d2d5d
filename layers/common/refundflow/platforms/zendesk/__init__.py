"""Zendesk Support: a trigger on the tag ``refund_approved`` (configurable) calls our webhook; every refund event
goes back to the ticket as an internal comment and a tag.

- ``inbound``: the webhook's HMAC signature (intake, verification secret only);
- ``connector``: the ``TicketPlatform`` (Tickets API through the shared HTTP client; its API token only);
- ``mapping.yaml``: the default reading of a ticket (merchants override it: README, Help desks).
"""
