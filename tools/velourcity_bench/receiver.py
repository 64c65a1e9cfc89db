"""The benchmark's receiver: a minimal HTTP/1.1 server on 127.0.0.1, fast enough not to be
what is measured (its own ceiling is measured in the same run: :mod:`velourcity_bench.limits`).

It runs in its own process (``python -m velourcity_bench.receiver --port 0``, which prints the
port it took) and records, for every ``POST``, its ``webhook-id`` (the event id), the
endpoint's tag and the wall-clock time it arrived. The URL says how to answer, so endpoints
need no set-up:

* ``/ok/<tag>``: ``200`` at once;
* ``/hang/<tag>``: the connection is accepted and the request read, and nothing is ever
  answered (the noisy neighbour);
* ``/fail-until/<unix ms>/<tag>``: ``500`` before that moment, ``200`` from then on (the
  retry storm).

``GET /_stats`` answers ``{"received": n}``; ``GET /_dump?from=N`` answers the records from the
N-th on as JSON lines ``[event_id, tag, unix_seconds]`` (nothing else is parsed per request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import cast

import orjson

Record = tuple[str, str, float]

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Recorder:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.hanging: list[asyncio.Transport] = []


class _Http(asyncio.Protocol):
    """One keep-alive connection; requests are parsed from a byte buffer, no framework."""

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._hung = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._hung:
            return
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            length = 0
            event_id = ""
            lines = head.split(b"\r\n")
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                lower = name.strip().lower()
                if lower == b"content-length":
                    length = int(value.strip() or b"0")
                elif lower == b"webhook-id":
                    event_id = value.strip().decode()
            if len(self._buffer) < end + 4 + length:
                return
            del self._buffer[: end + 4 + length]
            self._answer(lines[0], event_id)
            if self._hung:
                return

    def _answer(self, request_line: bytes, event_id: str) -> None:
        assert self._transport is not None
        parts = request_line.split(b" ")
        if len(parts) < 2:
            self._transport.write(_BAD)
            self._transport.close()
            return
        method, path = parts[0], parts[1].decode()
        if method == b"GET":
            self._transport.write(self._control(path))
            return
        now = time.time()
        segments = path.strip("/").split("/")
        mode = segments[0]
        if mode == "hang":
            self._hung = True  # read, never answered: the sender waits for its timeout
            self._recorder.hanging.append(self._transport)
            return
        self._recorder.records.append((event_id, segments[-1], now))
        if mode == "fail-until" and now * 1000 < float(segments[1]):
            self._transport.write(_FAIL)
        else:
            self._transport.write(_OK)

    def _control(self, path: str) -> bytes:
        records = self._recorder.records
        if path.startswith("/_dump"):
            start = int(path.partition("from=")[2] or 0)
            body = b"\n".join(orjson.dumps(r) for r in records[start:])
        else:
            body = orjson.dumps({"received": len(records)})
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        return head + body


async def serve(host: str, port: int, ready: asyncio.Event | None = None) -> None:
    recorder = _Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(recorder), host, port, backlog=4096)
    sockets = server.sockets or ()
    print(sockets[0].getsockname()[1], flush=True)  # the port, for the parent process
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def run_loop(main: object) -> None:
    """Run a coroutine on uvloop when it is installed (it is, with the ``bench`` extra)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(args.host, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
