"""``python -m pipeline.bench.worker [--http-client aiohttp] [--uvloop]``: ``velourcity worker``
with one of the benchmark's experimental variants, for ``velourcity bench --http-client
aiohttp`` / ``--uvloop``: the aiohttp transport of :mod:`pipeline.bench.transport` in the
sender, and/or uvloop as the event loop. Everything else is the production worker."""

from __future__ import annotations

import argparse
import asyncio

import httpx

from pipeline import worker
from pipeline.bench.transport import AiohttpTransport
from pipeline.delivery.sender import HttpSender
from pipeline.settings import Settings, load_settings


def _aiohttp_sender(settings: Settings) -> HttpSender:
    limits = httpx.Limits(
        max_connections=settings.http_max_connections,
        max_keepalive_connections=settings.http_max_connections,
        keepalive_expiry=30,
    )
    timeout = httpx.Timeout(settings.http_timeout, connect=settings.http_connect_timeout)
    transport = AiohttpTransport(
        allowed_networks=settings.allowed_networks, limits=limits, timeout=timeout
    )
    return HttpSender(settings, transport=transport)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-client", choices=["httpx", "aiohttp"], default="httpx")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args(argv)
    if args.http_client == "aiohttp":
        worker.HttpSender = _aiohttp_sender  # type: ignore[attr-defined,assignment]
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    worker.run_worker(load_settings())


if __name__ == "__main__":
    main()
