"""POST one webhook and report what happened: an :class:`AttemptResult`, never an exception
for anything the receiver or the network did.

The worker sends straight through aiohttp's connection pool (:class:`AiohttpSender`). httpx's
client layer above a pool cost 0.31-0.35 ms a request where aiohttp alone costs 0.10-0.12 ms on
the same machine (issue 15's micro-benchmarks; its pool scans every connection per request:
encode/httpx#3215), three times the whole budget of a delivery. httpx stays where it serves:
the CLI, ``velourcity listen``, and unit tests, which hand :func:`new_http_sender` an
``httpx.MockTransport`` (:class:`HttpxSender`); ``VELOURCITY_HTTP_CLIENT=httpx`` sends through
httpx's own pool. Both send the same bytes (``tests/unit/test_transport.py`` compares them on
the wire) behind the same SSRF guard, with no cookies, no redirects and the same timeouts.

Errors are named by :func:`error_class`, here and nowhere else.
"""

from __future__ import annotations

import asyncio
import codecs
import http.cookiejar
import ssl
import time
from collections.abc import Sequence
from typing import Protocol

import aiohttp
import httpx
import yarl

from pipeline.delivery.policy import AttemptResult, parse_retry_after
from pipeline.delivery.ssrf import (
    GuardedBackend,
    IPNetwork,
    Resolver,
    guarded_transport,
    is_ssrf_refusal,
    parse_host_ip,
)
from pipeline.delivery.transport import AiohttpTransport, guarded_session, httpx_error
from pipeline.settings import Settings

EXCERPT_BYTES = 4096

# What httpx's client puts before the given headers; sent the same way by both senders, so a
# receiver sees the same request whichever sends it. (aiohttp adds Host and Content-Length.)
_BASE_HEADERS = (
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
)
_NOT_AUTOMATIC = frozenset({"User-Agent", "Content-Type", "Accept-Encoding", "Accept"})


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult: ...

    async def aclose(self) -> None: ...


def error_class(exc: BaseException) -> str:
    """A short, stable name for why no usable response came (httpx's errors, or aiohttp's
    named as httpx would name them); ``internal_error`` for anything else (a bug of ours)."""
    if isinstance(exc, Exception) and not isinstance(exc, httpx.HTTPError):
        mapped = httpx_error(exc, None)
        if mapped is not exc:
            mapped.__cause__ = exc
            exc = mapped
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


def _excerpt(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:  # final=False: a character cut at the limit is dropped
        return codecs.getincrementaldecoder("utf-8")("replace").decode(raw, final=False)


def _failed(exc: BaseException, started: float) -> AttemptResult:
    return AttemptResult(
        status=None,
        error=error_class(exc),
        latency_ms=(time.perf_counter() - started) * 1000,
        excerpt=str(exc)[:EXCERPT_BYTES],
    )


class AiohttpSender:
    """The worker's sender: one aiohttp pool, keep-alive connections bounded in number, behind
    the SSRF guard (host names through the guarded resolver at every new connection; an IP
    literal, which aiohttp dials without resolving, checked here once per URL)."""

    def __init__(
        self,
        *,
        allowed_networks: Sequence[IPNetwork],
        max_connections: int,
        timeout: float,
        connect_timeout: float,
        resolver: Resolver | None = None,
    ) -> None:
        self._guard = GuardedBackend(allowed_networks=allowed_networks, resolver=resolver)
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, connect=timeout, sock_connect=connect_timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}
        """Endpoint URL → the URL to dial (an IP literal checked and spelled canonically)."""

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on the worker's event loop, at first use
            self._session = guarded_session(
                self._guard,
                max_connections=self._max_connections,
                keepalive=30,
                connect_timeout=self._connect_timeout,
                timeout=self._timeout,
                auto_decompress=True,
            )
        return self._session

    async def _target(self, url: str) -> yarl.URL:
        """The URL as httpx would send it (its encoding, once per URL), its IP literal checked."""
        target = self._urls.get(url)
        if target is None:
            parsed = httpx.URL(url)
            literal = parse_host_ip(parsed.host)
            if literal is not None:  # refused here, or dialled as the address checked
                await self._guard.checked_addresses(parsed.host, parsed.port or 0)
                parsed = parsed.copy_with(host=str(literal))
            target = yarl.URL(str(parsed), encoded=True)
            if len(self._urls) > 100_000:
                self._urls.clear()
            self._urls[url] = target
        return target

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started = time.perf_counter()
        try:
            target = await self._target(url)
            async with self._client().post(
                target,
                data=body,
                headers=[*_BASE_HEADERS, *headers.items()],
                allow_redirects=False,
                skip_auto_headers=_NOT_AUTOMATIC,
            ) as response:
                excerpt = b""
                while len(excerpt) < EXCERPT_BYTES:
                    chunk = await response.content.read(EXCERPT_BYTES - len(excerpt))
                    if not chunk:
                        break
                    excerpt += chunk
                status = response.status
                retry_after = (
                    parse_retry_after(response.headers.get("Retry-After"), time.time())
                    if status >= 300
                    else None
                )
        except Exception as exc:
            if error_class(exc) == "internal_error":
                raise  # our bug, not the receiver's: the caller counts it as an internal error
            return _failed(exc, started)
        return AttemptResult(
            status=status,
            error=None,
            latency_ms=(time.perf_counter() - started) * 1000,
            excerpt=_excerpt(excerpt),
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_NO_COOKIES = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class HttpxSender:
    """The same over an ``httpx.AsyncClient``: httpx's own guarded pool, or a transport given
    (tests: ``httpx.MockTransport``)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport) -> None:
        self._total_timeout = settings.http_timeout
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.http_timeout, connect=settings.http_connect_timeout),
            follow_redirects=False,
            cookies=_NO_COOKIES,  # a webhook is not a session: no receiver's cookie goes back
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout(self._total_timeout),
                self._client.stream("POST", url, content=body, headers=headers) as rsp,
            ):
                excerpt = bytearray()
                async for chunk in rsp.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= EXCERPT_BYTES:
                        break
                retry_after = parse_retry_after(rsp.headers.get("retry-after"), time.time())
                status = rsp.status_code
        except Exception as exc:
            if error_class(exc) == "internal_error":
                raise  # our bug, not the receiver's
            return _failed(exc, started)
        return AttemptResult(
            status=status,
            error=None,
            latency_ms=(time.perf_counter() - started) * 1000,
            excerpt=_excerpt(bytes(excerpt[:EXCERPT_BYTES])),
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def new_http_sender(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AiohttpSender | HttpxSender:
    """The sender ``settings.http_client`` names; with a ``transport``, httpx over it."""
    limits = httpx.Limits(
        max_connections=settings.http_max_connections,
        max_keepalive_connections=settings.http_max_connections,
        keepalive_expiry=30,
    )
    if transport is not None:
        return HttpxSender(settings, transport)
    if settings.http_client == "httpx":
        return HttpxSender(
            settings, guarded_transport(allowed_networks=settings.allowed_networks, limits=limits)
        )
    return AiohttpSender(
        allowed_networks=settings.allowed_networks,
        max_connections=settings.http_max_connections,
        timeout=settings.http_timeout,
        connect_timeout=settings.http_connect_timeout,
    )


__all__ = [
    "EXCERPT_BYTES",
    "AiohttpSender",
    "AiohttpTransport",
    "HttpxSender",
    "Poster",
    "error_class",
    "new_http_sender",
]
