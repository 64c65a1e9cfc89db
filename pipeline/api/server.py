"""``velourcity api``: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from pipeline.api.app import create_api
from pipeline.observability import configure_logging
from pipeline.settings import Settings


def serve(settings: Settings, *, host: str, port: int, run_relay: bool = True) -> None:
    configure_logging(settings)
    level = "warning" if settings.log_level == "warn" else settings.log_level
    uvicorn.run(create_api(settings, run_relay=run_relay), host=host, port=port, log_level=level)
