"""Microsoft Dynamics 365 Business Central books (API v2.0): a refund becomes a posted sales credit memo."""
