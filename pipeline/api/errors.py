"""Every error the API answers is ``{"error": {"code", "message", "field"}}``.

Input problems are 4xx naming the field and what is accepted; nothing a client sends may turn
into a 5xx. This module maps FastAPI's, Starlette's and the pipeline's errors to that one shape,
and limits request bodies before anything parses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.exceptions import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    PublishError,
    StaleVersion,
)

log = structlog.get_logger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An answer other than success, raised anywhere in a route."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.headers = field, headers


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} {ident}")


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


_CODES = {"extra_forbidden": "unknown_field", "missing": "missing_field"}


def _field(loc: Sequence[int | str]) -> str | None:
    path = [str(part) for part in loc[1:]]  # loc[0] is "body", "query" or "path"
    return ".".join(path) or None


def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first: dict[str, Any] = exc.errors()[0]
    if first["type"] == "json_invalid":
        message = f"the body is not valid JSON: {first.get('ctx', {}).get('error', 'malformed')}"
        return error_response(400, "malformed_json", message)
    field = _field(first["loc"])
    if field is None:  # the body as a whole: none, or not an object
        code = "missing_body" if first["type"] == "missing" else "invalid_body"
        message = "the body must be a JSON object, sent as Content-Type: application/json"
        return error_response(422, code, message)
    message = f"{field}: {first['msg']}"
    return error_response(422, _CODES.get(first["type"], "invalid_field"), message, field)


def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of the path, not only those of the first route that matched it (Starlette
    keeps one route per method, and its 405 names the first one's only)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _invalid_input(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "invalid_field", str(exc))


def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("write not acknowledged", error=str(exc))
    message = "the change was not saved (the broker did not acknowledge it); try again"
    return error_response(503, "unavailable", message)


def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", error=str(exc))
    message = (
        "the database is unavailable (nothing was changed); deliveries go on and the delivery"
        " log catches up when it is back: try again shortly"
    )
    return error_response(503, "database_unavailable", message, headers={"Retry-After": "5"})


def _stale_version(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StaleVersion)
    message = (
        f"If-Match names a version that is no longer current (it is now {exc.current}):"
        " nothing was changed; GET the resource again and retry with its ETag"
    )
    return error_response(412, "precondition_failed", message, headers={"ETag": f'"{exc.current}"'})


def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "conflict", str(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(PublishError, _unavailable)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(StaleVersion, _stale_version)
    app.add_exception_handler(Conflict, _conflict)


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` is answered 413 before any route reads it.

    The body is read here (at most ``max_bytes``) and replayed to the app, so a client that
    omits or understates ``Content-Length`` is held to the same limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit():
            bad = error_response(400, "bad_request", "Content-Length is not a number")
            await bad(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = int(declared), True
        if size <= self.max_bytes:
            size = 0
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False) and size <= self.max_bytes
        if size > self.max_bytes:
            message_ = f"the body is over the limit of {self.max_bytes} bytes"
            await error_response(413, "body_too_large", message_)(scope, receive, send)
            return
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
