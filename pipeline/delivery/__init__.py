"""Webhook delivery: sending attempts to endpoints and guarding where they may connect."""
