"""Gorgias (help desk of Shopify and Stripe merchants): an HTTP integration on ticket updates calls our webhook;
every refund event goes back to the ticket as an internal note and a state tag.

- ``inbound``: the HTTP integration's bearer token (intake, verification secret only; Gorgias signs nothing);
- ``connector``: the ``TicketPlatform`` (REST API through the shared HTTP client; its API key only), which also
  reads the ticket's custom fields and its customer's integration data (Shopify orders, Stripe charges) and says
  which order the ticket is about, and so which payment (``orders``);
- ``mapping.yaml``: the default reading of a ticket (merchants override it: README, Help desks).
"""
