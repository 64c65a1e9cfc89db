"""The control plane in PostgreSQL: accounts, API keys and endpoints (the API's store), the
outbox relay that carries each committed change to the compacted topics the workers read, and
the one-time import of those topics."""

from pipeline.controlplane.store import ControlPlane, VersionedAccount, VersionedEndpoint

__all__ = ["ControlPlane", "VersionedAccount", "VersionedEndpoint"]
