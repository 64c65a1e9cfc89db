"""``velourcity worker`` on uvloop: ``python -m velourcity_bench.worker --uvloop``.

For ``velourcity bench --uvloop`` (uvloop comes with the ``bench`` extra only). The HTTP
transport is a setting (``VELOURCITY_HTTP_CLIENT``), handed over like the others."""

from __future__ import annotations

import argparse
import asyncio

from pipeline import worker
from pipeline.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args(argv)
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    worker.run_worker(load_settings())


if __name__ == "__main__":
    main()
