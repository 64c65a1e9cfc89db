"""An experimental ``httpx`` transport over aiohttp's connection pool, for the benchmark's
comparison of HTTP clients (issue 8 asks to measure encode/httpx#3215 and compare an
aiohttp-backed transport behind httpx's own interface). ``velourcity bench --http-client
aiohttp`` runs the workers with it (:mod:`pipeline.bench.worker`); production workers keep
:func:`pipeline.delivery.ssrf.guarded_transport` until this has its own SSRF test suite.

The SSRF guard is the production one: a host name is resolved by
:class:`~pipeline.delivery.ssrf.GuardedBackend`, which refuses forbidden addresses, and aiohttp
dials exactly the addresses it returned (no DNS cache); an IP literal, which aiohttp dials
without resolving, is checked before the request. No proxy (``trust_env=False``), no redirects.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence

import aiohttp
import aiohttp.abc
import httpcore
import httpx

from pipeline.delivery.ssrf import GuardedBackend, Resolver, parse_host_ip
from pipeline.settings import IPNetwork


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over an aiohttp connection pool, behind the same SSRF guard.

    httpcore's pool scans every connection on each request (encode/httpx#3215) and, without
    sniffio, imports it on each request: under load that was half of a worker's CPU. aiohttp's
    pool does not. The guard is the same as :func:`guarded_transport`'s: a host name is
    resolved by :class:`GuardedBackend`, which refuses forbidden addresses, and aiohttp dials
    exactly the addresses it returned; an IP literal (which aiohttp does not resolve) is
    checked here before the request. No proxy (``trust_env=False``), no redirects."""

    def __init__(
        self,
        *,
        allowed_networks: Sequence[IPNetwork],
        limits: httpx.Limits,
        timeout: httpx.Timeout,
        resolver: Resolver | None = None,
    ) -> None:
        self._guard = GuardedBackend(allowed_networks=allowed_networks, resolver=resolver)
        self._limits = limits
        self._timeout = aiohttp.ClientTimeout(
            total=timeout.read, connect=timeout.connect, sock_connect=timeout.connect
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on the worker's event loop, at first use
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry or 30,
                resolver=_GuardedResolver(self._guard),
                use_dns_cache=False,  # every new connection's addresses are checked again
                ssl=httpx.create_ssl_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False, auto_decompress=False
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if parse_host_ip(host) is not None:  # aiohttp dials literals without resolving them
            try:
                await self._guard._checked_addresses(host, request.url.port or 0)
            except httpcore.ConnectError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
        body = await request.aread()
        try:
            response = await self._client().request(
                request.method,
                str(request.url),
                data=body,
                headers=[(k, v) for k, v in request.headers.multi_items() if k != "content-length"],
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
            )
        except Exception as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_AiohttpStream(response, request),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


class _GuardedResolver(aiohttp.abc.AbstractResolver):
    def __init__(self, guard: GuardedBackend) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        addresses = await self._guard._checked_addresses(host, port)
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in addresses
        ]

    async def close(self) -> None:
        pass


def _httpx_error(exc: Exception, request: httpx.Request) -> Exception:
    """aiohttp's errors as the httpx errors :func:`error_class` names (cause kept)."""
    if isinstance(exc, httpx.HTTPError | httpcore.ConnectError):
        return (
            exc
            if isinstance(exc, httpx.HTTPError)
            else httpx.ConnectError(str(exc), request=request)
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timed out", request=request)
    if isinstance(exc, TimeoutError):  # aiohttp's total or socket-read timeout
        return httpx.ReadTimeout(str(exc) or "timed out", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx.NetworkError(str(exc), request=request)
    return exc
