"""The FastAPI dependency: re-exported from the partner SDK (``velourcity_webhooks.fastapi``)."""

from __future__ import annotations

from velourcity_webhooks.fastapi import VerifiedWebhook, verified_webhook

__all__ = ["VerifiedWebhook", "verified_webhook"]
