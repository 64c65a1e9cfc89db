"""Pytest fixtures for testing a Velourcity webhook receiver (registered as plugin ``velourcity``).

Installing ``velourcity-webhooks-sdk`` makes them available in every test, no import needed::

    def test_my_receiver(client, velourcity_secret, velourcity_signed_request):
        app.state.webhook_secret = velourcity_secret
        request = velourcity_signed_request("order.delivered", order_id="ord_1")
        response = client.post("/webhooks", content=request.body, headers=request.headers)
        assert response.status_code == 200

Loaded into every pytest run of an environment that has the package, so this module imports
only the standard library and pytest, and its fixture names all start with ``velourcity_``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from velourcity_webhooks.testing import SignedRequest

__all__ = [
    "SignedRequestFactory",
    "velourcity_new_secret",
    "velourcity_secret",
    "velourcity_signed_request",
]


class SignedRequestFactory(Protocol):
    def __call__(
        self, event_type: str, *, secret: str | Sequence[str] | None = None, **overrides: Any
    ) -> SignedRequest: ...


def _new_secret() -> str:
    """A fresh ``whsec_`` secret in the production format (32 random bytes, base64)."""
    from velourcity_webhooks.testing import new_secret

    return new_secret()


@pytest.fixture
def velourcity_secret() -> str:
    """A fresh endpoint secret for this test: configure your receiver with it."""
    return _new_secret()


@pytest.fixture
def velourcity_new_secret() -> Callable[[], str]:
    """Make more secrets (say, the new one of a rotation): ``velourcity_new_secret()``."""
    return _new_secret


@pytest.fixture
def velourcity_signed_request(velourcity_secret: str) -> SignedRequestFactory:
    """``factory(event_type, **overrides) -> SignedRequest`` signed with ``velourcity_secret``.

    Overrides are those of :func:`velourcity_webhooks.testing.make_signed_request` (data fields,
    ``event_id``, ``timestamp``, ``attempt``, ...); ``secret=`` signs with other secrets
    instead, e.g. ``[new, velourcity_secret]`` for a webhook sent during a rotation.
    """
    from velourcity_webhooks.testing import make_signed_request

    def factory(
        event_type: str, *, secret: str | Sequence[str] | None = None, **overrides: Any
    ) -> SignedRequest:
        return make_signed_request(event_type, secret or velourcity_secret, **overrides)

    return factory
