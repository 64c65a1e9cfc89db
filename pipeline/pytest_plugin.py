"""The pytest fixtures: re-exported from the partner SDK (``velourcity_webhooks.pytest_plugin``).

The SDK registers them as pytest plugin ``velourcity``; this module only keeps the old import
path working (``pytest -p pipeline.pytest_plugin`` is not needed and would load them twice).
"""

from __future__ import annotations

from velourcity_webhooks.pytest_plugin import (
    SignedRequestFactory,
    velourcity_new_secret,
    velourcity_secret,
    velourcity_signed_request,
)

__all__ = [
    "SignedRequestFactory",
    "velourcity_new_secret",
    "velourcity_secret",
    "velourcity_signed_request",
]
