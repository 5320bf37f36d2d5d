"""Microsoft Dynamics 365 Customer Service: a Power Automate cloud flow on the Cases table (the case resolved with
its refund action Approved, or the action set to Requested / Cancelled) posts to us with a shared secret; every
refund event goes back to the case as a note (annotation) and, while the case is open, its refund status column.

- ``inbound``: the flow's HTTP action's secret header (intake, verification secrets only): nothing is signed, so the
  delivery is only news and the case is always read again through the Dataverse Web API;
- ``connector``: the ``TicketPlatform`` (Dataverse Web API v9.2 through the shared HTTP client, Entra ID client
  credentials through the shared ``EntraTokenSource``);
- ``mapping.yaml``: the default reading of a case (merchants override it: README, Help desks).
"""
