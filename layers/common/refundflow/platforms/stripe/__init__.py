"""Stripe: payment platform (refunds through the official SDK) and inbound webhooks (Stripe-Signature)."""
