"""Reconciliation: settlement and bank files parsed as streams, matched against our refunds."""
