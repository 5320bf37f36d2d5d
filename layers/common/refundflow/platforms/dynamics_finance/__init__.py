"""Dynamics 365 Finance (finance and operations apps) as a books platform: free text credit notes over OData."""
