"""``velourcity receiver``: a local webhook inspector, the counterpart of Webhook.site.

It accepts POSTs on any path, verifies them with :mod:`pipeline.receiver` when secrets are
given (401 when that fails), prints each request and answers ``--status``; ``--fail-first N``
answers 500 to the first N authentic requests of each ``webhook-id`` to show retries.
:func:`make_server` is the same server without the printing, for tests and the demo.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from pipeline.receiver import MalformedBody, WebhookVerificationError, standard_signature, verify

__all__ = ["OnRequest", "format_record", "make_server", "receiver"]

OnRequest = Callable[[dict[str, Any]], None]
"""Called with each request's record before it is answered (see :func:`make_server`)."""

_VELOURCITY = "x-velourcity-signature"
_STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _scheme_ok(
    lowered: Mapping[str, str], raw: bytes, secrets: Sequence[str], *, standard: bool
) -> bool | None:
    """Verify one signature scheme alone; None when the request does not carry it."""
    names = _STANDARD if standard else (_VELOURCITY,)
    if not any(n in lowered for n in names):
        return None
    drop = (_VELOURCITY,) if standard else _STANDARD
    try:
        verify({k: v for k, v in lowered.items() if k not in drop}, raw, secrets)
    except MalformedBody:
        return True  # the signature matched; the body is reported by the full check
    except WebhookVerificationError:
        return False
    return True


@dataclass(kw_only=True)
class _Inspector:
    """What the server does with a request, apart from HTTP."""

    secrets: Sequence[str]
    fail_first: int
    status: int
    on_request: OnRequest | None
    seen: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        verified: dict[str, bool | None] | None = None
        error: str | None = None
        if self.secrets:
            verified = {
                "velourcity": _scheme_ok(lowered, raw, self.secrets, standard=False),
                "standard": _scheme_ok(lowered, raw, self.secrets, standard=True),
            }
            try:
                verify(lowered, raw, self.secrets)
            except WebhookVerificationError as exc:
                error = f"{type(exc).__name__}: {exc}"
        key = lowered.get("webhook-id") or lowered.get("x-velourcity-event-id") or ""
        if error:
            status = 401
        else:
            with self.lock:
                count = self.seen[key] = self.seen.get(key, 0) + 1
            status = 500 if count <= self.fail_first else self.status
        return {
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "path": path,
            "webhook_id": key or None,
            "headers": headers,
            "body": body,
            "raw_body": raw.decode(errors="replace"),
            "verified": verified,
            "error": error,
            "status": status,
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], inspector: _Inspector) -> None:
        self.inspector = inspector
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "VelourcityReceiver/1.0"

    def do_POST(self) -> None:
        inspector = cast(_Server, self.server).inspector
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._answer(411, {"ok": False, "error": "send the body with a Content-Length"})
            return
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self._answer(400, {"ok": False, "error": f"bad Content-Length: {length!r}"})
            return
        raw = self.rfile.read(int(length))
        record = inspector.record(self.path, dict(self.headers.items()), raw)
        status: int = record["status"]
        try:
            if inspector.on_request is not None:
                inspector.on_request(record)
        finally:
            self._answer(status, {"ok": 200 <= status < 300})

    def do_GET(self) -> None:
        self._answer(405, {"ok": False, "error": "POST webhooks to any path"})

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log: the inspector prints its own."""

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = b"" if status in (204, 304) else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def make_server(
    host: str,
    port: int,
    *,
    secrets: Sequence[str] = (),
    fail_first: int = 0,
    status: int = 200,
    on_request: OnRequest | None = None,
) -> ThreadingHTTPServer:
    """A bound, not yet serving, inspector; run ``serve_forever()`` (e.g. in a thread).

    ``on_request`` gets one dict per POST: ``path``, ``webhook_id``, ``headers``, ``body``
    (parsed JSON or None), ``raw_body``, ``verified`` (None without secrets, else
    ``{"velourcity": bool | None, "standard": bool | None}``, None for an absent scheme),
    ``error`` (why verification failed) and ``status`` (the answer). Raises ``ValueError``
    for an unusable secret or status.
    """
    for secret in secrets:
        standard_signature(b"", secret, "check", 0)  # raises ValueError when unusable
    if not 100 <= status <= 599 or fail_first < 0:
        raise ValueError("status must be 100-599 and fail_first >= 0")
    inspector = _Inspector(
        secrets=list(secrets), fail_first=fail_first, status=status, on_request=on_request
    )
    return _Server((host, port), inspector)


def _mark(ok: bool | None) -> str:
    return {True: "✓", False: "✗", None: "-"}[ok]


def format_record(record: Mapping[str, Any], *, quiet: bool = False) -> str:
    """The printed block for one request: a summary line, then headers and body."""
    headers = {k.lower(): v for k, v in record["headers"].items()}
    body = record["body"]
    fields = body if isinstance(body, dict) else {}
    event = headers.get("x-velourcity-event") or fields.get("type") or "(no event type)"
    event_id = headers.get("x-velourcity-event-id") or record["webhook_id"] or fields.get("id")
    attempt = headers.get("x-velourcity-delivery-attempt", "?")
    verified = record["verified"]
    signatures = (
        "not checked (no --secret)"
        if verified is None
        else f"velourcity {_mark(verified['velourcity'])} standard {_mark(verified['standard'])}"
    )
    line = f"← {event}  attempt {attempt}  {event_id or '-'}  signatures: {signatures}"
    line += f"  → {record['status']}"
    if record["error"]:
        line += f"  ({record['error']})"
    if quiet:
        return line
    lines = [line, f"  POST {record['path']}  at {record['received_at']}"]
    lines += [f"  {name}: {value}" for name, value in record["headers"].items()]
    text = json.dumps(body, indent=2, ensure_ascii=False) if body is not None else None
    text = text or record["raw_body"] or "(empty body)"
    lines += ["", *(f"  {t}" for t in text.splitlines()), ""]
    return "\n".join(lines)


def _printer(*, quiet: bool, log_json: Path | None) -> OnRequest:
    lock = threading.Lock()

    def on_request(record: dict[str, Any]) -> None:
        with lock:
            typer.echo(format_record(record, quiet=quiet))  # click's echo flushes
            if log_json is not None:
                with log_json.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(record, ensure_ascii=False) + "\n")

    return on_request


def receiver(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 3000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret", help="Endpoint secret (whsec_...) to verify with; repeat for rotation."
        ),
    ] = None,
    fail_first: Annotated[
        int, typer.Option("--fail-first", min=0, help="Answer 500 to the first N per webhook-id.")
    ] = 0,
    status: Annotated[
        int, typer.Option("--status", min=100, max=599, help="Answer to the other requests.")
    ] = 200,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="One line per request.")] = False,
    log_json: Annotated[
        Path | None,
        typer.Option("--log-json", metavar="FILE", dir_okay=False, help="Append JSON lines."),
    ] = None,
) -> None:
    """Receive webhooks locally: verify, print and answer them (Ctrl-C to stop)."""
    secrets = secret or []
    try:
        server = make_server(
            host,
            port,
            secrets=secrets,
            fail_first=fail_first,
            status=status,
            on_request=_printer(quiet=quiet, log_json=log_json),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--secret") from exc
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    bound_host, bound_port = server.server_address[:2]
    checks = f"verifying with {len(secrets)} secret(s)" if secrets else "not verifying"
    answers = f"500 to the first {fail_first} per webhook-id, then " if fail_first else ""
    typer.echo(
        f"Listening on http://{bound_host!s}:{bound_port} ({checks}; answering "
        f"{answers}{status}). Ctrl-C to stop."
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.server_close()
