"""Freshdesk: an automation rule on ticket updates (the agent sets the ticket's refund action) triggers a webhook
to us; every refund event goes back to the ticket as a private note and a custom refund status field.

- ``inbound``: the webhook's shared secret in a custom header (intake, verification secrets only): Freshdesk
  signs nothing, so the delivery is only news and the ticket is always read again through the API;
- ``connector``: the ``TicketPlatform`` (Freshdesk API v2 through the shared HTTP client; its API key only);
- ``mapping.yaml``: the default reading of a ticket (merchants override it: README, Help desks).
"""
