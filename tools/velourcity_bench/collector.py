"""A minimal OTLP/HTTP trace collector on 127.0.0.1: what the bench's ``--tracing`` exports to,
and what the tracing tests read spans from.

It parses each export (so the exporters do their whole job, protobuf and HTTP included) and
counts the spans; with ``keep`` it also keeps them, with their service names, for tests.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class SpanCollector:
    def __init__(self, *, keep: bool = False) -> None:
        self.count = 0
        self.exports = 0
        self.spans: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector._add(request, keep)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-collector", daemon=True
        )
        self._thread.start()

    def _add(self, request: ExportTraceServiceRequest, keep: bool) -> None:
        with self._lock:
            self.exports += 1
            for resource in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource.scope_spans:
                    self.count += len(scope.spans)
                    if keep:
                        self.spans.extend((service, s) for s in scope.spans)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def named(self, name: str) -> list[tuple[str, Any]]:
        with self._lock:
            return [(service, s) for service, s in self.spans if s.name == name]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
