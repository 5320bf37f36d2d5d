"""HubSpot Service Hub: a workflow on the support pipeline ("Send a webhook", request signature in the header)
calls our webhook when a ticket enters a refund stage; every refund event goes back to the ticket as a note and its
pipeline stage and refund status property.

- ``inbound``: the v3 request signature (intake, verification secret only: the app's client secret and the webhook
  URL the workflow calls, which the signature covers);
- ``connector``: the ``TicketPlatform`` (CRM v3 objects and v4 associations through the shared HTTP client; its
  private-app token only);
- ``mapping.yaml``: the default reading of a ticket (merchants override it: README, Help desks).
"""
