"""ServiceNow: a flow (Flow Designer, or a business rule) on incidents or customer service cases of type refund
sends an outbound REST message to us when the agent sets the record's refund action; every refund event goes back to
the record as a work note and a refund status field through the Table API.

- ``inbound``: the REST message's shared secret (a custom header, or HTTP Basic) checked by intake (verification
  secrets only): ServiceNow signs nothing, so the delivery is only news and the record is always read again;
- ``connector``: the ``TicketPlatform`` (Table API through the shared HTTP client; OAuth 2.0 from the instance's
  ``/oauth_token.do``, client credentials or password grant, or HTTP Basic, as the instance allows);
- ``mapping.yaml``: the default reading of a record (merchants override it: README, Help desks).
"""
