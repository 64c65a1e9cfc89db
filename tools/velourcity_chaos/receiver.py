"""The accounting receiver: a webhook server in its own process that writes down every request.

    python -m velourcity_chaos.receiver --port 0 --control-port 0 --ledger ledger.jsonl

It answers ``POST`` on any path (the path names the endpoint) and appends one JSON line per
request to the ledger: event id, endpoint (path), attempt, ``webhook-id``, delivery id, the
time it arrived and the status it answered. Its mode is switched on a second port, the
control port, with ``POST /mode/<mode>``:

* ``accept``: answer ``200``;
* ``unavailable``: answer ``503``;
* ``refuse``: stop listening and drop open connections (connects are refused).

It is plain asyncio (no framework), so one process keeps up with three workers; it prints
``ready <port> <control port>`` on stdout once both ports listen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

Mode = Literal["accept", "unavailable", "refuse"]
MODES: tuple[Mode, ...] = ("accept", "unavailable", "refuse")
MAX_BODY = 16 * 1024 * 1024

_STATUS_LINES = {200: b"200 OK", 404: b"404 Not Found", 503: b"503 Service Unavailable"}


@dataclass
class _State:
    ledger: IO[str]
    port: int
    mode: Mode = "accept"
    server: asyncio.Server | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    requests: int = 0


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length < 0 or length > MAX_BODY:
        raise ValueError(f"body of {length} bytes")
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


def _response(status: int, body: bytes = b"", *, close: bool = False) -> bytes:
    return (
        b"HTTP/1.1 "
        + _STATUS_LINES.get(status, f"{status} Status".encode())
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + (b"\r\nConnection: close" if close else b"")
        + b"\r\n\r\n"
        + body
    )


async def _serve_webhooks(
    state: _State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    state.connections.add(writer)
    try:
        while state.mode != "refuse":
            try:
                method, path, headers, _body = await _read_request(reader)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            except ValueError:
                return
            status = 503 if state.mode == "unavailable" else 200
            if method != "POST":
                status = 404
            else:
                state.requests += 1
                record = {
                    "event_id": headers.get("x-velourcity-event-id"),
                    "endpoint": path,
                    "attempt": int(headers.get("x-velourcity-delivery-attempt", "0") or 0),
                    "webhook_id": headers.get("webhook-id"),
                    "delivery_id": headers.get("x-velourcity-delivery-id"),
                    "at": time.time(),
                    "status": status,
                }
                state.ledger.write(json.dumps(record, separators=(",", ":")) + "\n")
            writer.write(_response(status, b'{"ok":true}' if status == 200 else b"{}"))
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        state.connections.discard(writer)
        writer.close()


async def _listen(state: _State) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_webhooks(state, reader, writer)

    state.server = await asyncio.start_server(
        handle, "127.0.0.1", state.port, reuse_address=True, backlog=512
    )
    state.port = state.server.sockets[0].getsockname()[1]


async def _set_mode(state: _State, mode: Mode) -> None:
    previous, state.mode = state.mode, mode
    if mode == "refuse" and state.server is not None:
        state.server.close()
        for writer in list(state.connections):  # keep-alive connections too
            writer.transport.abort()
        await state.server.wait_closed()
        state.server = None
    elif mode != "refuse" and previous == "refuse":
        await _listen(state)


async def _serve_control(
    state: _State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        method, path, _headers, _body = await _read_request(reader)
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 2 and parts[0] == "mode" and parts[1] in MODES:
            await _set_mode(state, parts[1])
            state.ledger.flush()
            answer = {"mode": state.mode, "requests": state.requests}
            writer.write(_response(200, json.dumps(answer).encode(), close=True))
        elif method == "GET" and parts == ["stats"]:
            state.ledger.flush()
            answer = {"mode": state.mode, "requests": state.requests}
            writer.write(_response(200, json.dumps(answer).encode(), close=True))
        else:
            writer.write(_response(404, close=True))
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _flush_every(state: _State, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        state.ledger.flush()


async def run(port: int, control_port: int, ledger: Path) -> None:
    with ledger.open("a", buffering=1 << 16) as out:
        state = _State(ledger=out, port=port)
        await _listen(state)

        async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _serve_control(state, reader, writer)

        control_server = await asyncio.start_server(control, "127.0.0.1", control_port)
        print("ready", state.port, control_server.sockets[0].getsockname()[1], flush=True)
        flusher = asyncio.ensure_future(_flush_every(state, 0.2))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await stop.wait()
        finally:
            flusher.cancel()
            control_server.close()
            out.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the chaos suite's accounting receiver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--ledger", type=Path, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.port, args.control_port, args.ledger))


if __name__ == "__main__":
    main(sys.argv[1:])
