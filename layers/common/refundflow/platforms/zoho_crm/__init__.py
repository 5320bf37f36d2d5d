"""Zoho CRM: a workflow rule on the refund stage of a deal (or case) calls our webhook; every refund event goes
back to the record as a note and a refund status field (and, where configured, the record's stage).

- ``inbound``: the webhook's custom token header (intake, verification secrets only): Zoho signs nothing, so the
  delivery is only news and the record is always read again through the API;
- ``connector``: the ``TicketPlatform`` (CRM API v8 through the shared HTTP client, OAuth2 refresh tokens per data
  centre through refundflow.connectors.zoho; the API secret only);
- ``mapping.yaml``: the default reading of a deal (merchants override it: README, Help desks).
"""
