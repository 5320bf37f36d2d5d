"""Salesforce Service Cloud: a record-triggered Flow on Case updates (the agent sets the case's Refund action) makes
an HTTP Callout to us through a Named Credential whose External Credential adds the org's shared secret as a
header, or sends an Outbound Message (SOAP) to an endpoint URL carrying the org's token; every refund event goes
back to the case as a private CaseComment and a refund status custom field.

- ``ids``: Case ids (15 or 18 characters, key prefix ``500``) validated and made 18 characters, the one form used
  everywhere (deliveries, ticket ids, API paths);
- ``inbound``: the Flow callout's shared secret (intake, verification secrets only): Salesforce signs nothing, so
  the delivery is only news and the case is always read again through the REST API; a ``text/xml`` delivery goes
  to ``outbound_message``;
- ``outbound_message``: Outbound Messages (the URL's token, the configured org, XML read without DOCTYPE, one news
  per notification, the SOAP Ack);
- ``connector``: the ``TicketPlatform`` (REST API through the shared HTTP client, OAuth 2.0 client credentials
  against the org's My Domain; its connected app's client id and secret only);
- ``mapping.yaml``: the default reading of a case (merchants override it: README, Help desks).

Platform Events / Change Data Capture (Pub/Sub API, gRPC; or Event Relay to Amazon EventBridge) are not supported.
"""
