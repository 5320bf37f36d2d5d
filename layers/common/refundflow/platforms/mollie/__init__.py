"""Mollie: payment refunds (API v2), next-gen webhooks verified by HMAC, classic webhooks re-read from the API."""
