"""POST one webhook with a shared ``httpx.AsyncClient`` and report what happened.

Every outcome is an :class:`AttemptResult`, never an exception: a status, or an error class
when no usable response came. httpx's exceptions are translated here and nowhere else (the
aiohttp transport raises httpx's too).
"""

from __future__ import annotations

import asyncio
import codecs
import http.cookiejar
import ssl
import time

import httpx

from pipeline.delivery.policy import AttemptResult, parse_retry_after
from pipeline.delivery.ssrf import guarded_transport, is_ssrf_refusal
from pipeline.delivery.transport import AiohttpTransport
from pipeline.settings import Settings

EXCERPT_BYTES = 4096


def error_class(exc: BaseException) -> str:
    """A short, stable name for why no usable response came."""
    if is_ssrf_refusal(exc):
        return "ssrf_refused"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "connect_timeout" if isinstance(exc, httpx.ConnectTimeout) else "timeout"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return "tls_error"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__.lower()
    return "internal_error"


_NO_COOKIES = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class HttpSender:
    """One per worker: keep-alive connections, bounded in number, behind the SSRF guard.

    The connection pool is aiohttp's or httpx's own (``settings.http_client``); a
    ``transport`` given here (tests: ``httpx.MockTransport``) is used instead."""

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None):
        self._total_timeout = settings.http_timeout
        limits = httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=settings.http_max_connections,
            keepalive_expiry=30,
        )
        timeout = httpx.Timeout(settings.http_timeout, connect=settings.http_connect_timeout)
        allowed = settings.allowed_networks
        if transport is None:
            transport = (
                AiohttpTransport(allowed_networks=allowed, limits=limits, timeout=timeout)
                if settings.http_client == "aiohttp"
                else guarded_transport(allowed_networks=allowed, limits=limits)
            )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            cookies=_NO_COOKIES,  # a webhook is not a session: no receiver's cookie goes back
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._total_timeout):
                async with self._client.stream("POST", url, content=body, headers=headers) as rsp:
                    excerpt = bytearray()
                    async for chunk in rsp.aiter_bytes():
                        excerpt += chunk
                        if len(excerpt) >= EXCERPT_BYTES:
                            break
                    retry_after = parse_retry_after(rsp.headers.get("retry-after"), time.time())
                    status = rsp.status_code
        except Exception as exc:
            return AttemptResult(
                status=None,
                error=error_class(exc),
                latency_ms=(time.perf_counter() - started) * 1000,
                excerpt=str(exc)[:EXCERPT_BYTES],
            )
        return AttemptResult(
            status=status,
            error=None,
            latency_ms=(time.perf_counter() - started) * 1000,
            # final=False: a character cut at the byte limit is dropped, not turned into U+FFFD
            excerpt=codecs.getincrementaldecoder("utf-8")("replace").decode(
                bytes(excerpt[:EXCERPT_BYTES]), final=False
            ),
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
