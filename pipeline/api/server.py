"""``velourcity api``: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from pipeline.api.app import create_api
from pipeline.observability import configure_logging
from pipeline.settings import Settings


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    run_sink: bool = True,
    run_relay: bool = True,
) -> None:
    configure_logging(settings)
    level = "warning" if settings.log_level == "warn" else settings.log_level
    app = create_api(settings, run_sink=run_sink, run_relay=run_relay)
    uvicorn.run(app, host=host, port=port, log_level=level)
