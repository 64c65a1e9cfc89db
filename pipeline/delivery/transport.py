"""aiohttp's connection pool behind the SSRF guard (:func:`guarded_session`, the one the
sender sends through: :class:`~pipeline.delivery.http.AiohttpSender`), and the same pool
under httpx's transport interface (:class:`AiohttpTransport`), with which the SSRF suite
(``tests/unit/test_ssrf.py``) runs its connect-time checks through httpx's client on both
pools. :func:`httpx_error` names aiohttp's errors as httpx's, for
:func:`~pipeline.delivery.http.error_class`.

The SSRF guard is as strong as ``guarded_transport``'s: a host name is resolved by
:meth:`GuardedBackend.checked_addresses <pipeline.delivery.ssrf.GuardedBackend.checked_addresses>`
for every new connection (no DNS cache), which refuses if any address is forbidden, and aiohttp
dials exactly the addresses it returned; an IP literal, which aiohttp dials without resolving,
is checked here first and handed to aiohttp as the address checked. No proxy
(``trust_env=False``), no redirects, and no cookie jar of aiohttp's own.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence

import aiohttp
import aiohttp.abc
import httpcore
import httpx
import yarl

from pipeline.delivery.ssrf import GuardedBackend, Resolver, parse_host_ip
from pipeline.settings import IPNetwork

# Headers aiohttp would add when the request has none (httpx's client adds no Content-Type).
_NOT_AUTOMATIC = ("User-Agent", "Content-Type", "Accept-Encoding")
# httpcore (h11) takes a response head up to 100 KiB; aiohttp's default is 8 KiB a field.
_HEAD_LIMIT = 100 * 1024


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over an aiohttp connection pool, behind the SSRF guard.

    ``timeout`` means what it means to httpx: ``connect`` bounds resolving and dialling (TLS
    included), ``read`` each read, ``pool`` getting a connection at all."""

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
        self._connect_timeout = timeout.connect
        self._timeout = aiohttp.ClientTimeout(
            connect=timeout.pool, sock_connect=timeout.connect, sock_read=timeout.read
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on the worker's event loop, at first use
            self._session = guarded_session(
                self._guard,
                max_connections=self._limits.max_connections or 0,
                keepalive=self._limits.keepalive_expiry or 30,
                connect_timeout=self._connect_timeout,
                timeout=self._timeout,
                auto_decompress=False,  # httpx decodes, as with its own pool
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        try:
            literal = parse_host_ip(url.host)
            if literal is not None:  # aiohttp would dial it without asking the resolver
                await self._guard.checked_addresses(url.host, url.port or 0)
                url = url.copy_with(host=str(literal))
            response = await self._client().request(
                request.method,
                yarl.URL(str(url), encoded=True),  # the path and query exactly as httpx has them
                data=await request.aread(),
                # names in the case they were given (multi_items() lowercases them), and
                # Content-Length included, as httpx computed it
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                allow_redirects=False,
                skip_auto_headers=_NOT_AUTOMATIC,
            )
        except Exception as exc:
            raise httpx_error(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_AiohttpStream(response, request),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def guarded_session(
    guard: GuardedBackend,
    *,
    max_connections: int,
    keepalive: float,
    connect_timeout: float | None,
    timeout: aiohttp.ClientTimeout,
    auto_decompress: bool,
) -> aiohttp.ClientSession:
    """aiohttp's pool behind the SSRF guard, as both the sender
    (:class:`~pipeline.delivery.http.AiohttpSender`) and :class:`AiohttpTransport` use it: a
    host name's addresses are checked for every new connection (no DNS cache) and only those
    are dialled; no proxy from the environment, no cookie jar. (IP literals, which aiohttp
    dials without its resolver, are the caller's to check first.)"""
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        keepalive_timeout=keepalive,
        resolver=_GuardedResolver(guard, connect_timeout),
        use_dns_cache=False,  # every new connection's addresses are checked again
        ssl=httpx.create_ssl_context(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,
        auto_decompress=auto_decompress,
        cookie_jar=aiohttp.DummyCookieJar(),  # a webhook is not a session
        max_field_size=_HEAD_LIMIT,
    )


class _AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            raise httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()  # back to the pool if the body was read to its end, else closed


class _GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver for host names: only the addresses the guard checked, within the
    connect timeout (aiohttp's own ``connect`` is the pool timeout)."""

    def __init__(self, guard: GuardedBackend, timeout: float | None) -> None:
        self._guard = guard
        self._timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        async with asyncio.timeout(self._timeout):
            addresses = await self._guard.checked_addresses(host, port)
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


def httpx_error(exc: Exception, request: httpx.Request | None) -> Exception:
    """aiohttp's errors as the httpx errors :func:`~pipeline.delivery.http.error_class`
    names, chained to the original (so an SSRF refusal or a TLS error is still found)."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpcore.ConnectError):  # the guard's: a refusal, or no such name
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, TimeoutError):  # sock_read
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):  # closed early, cut short, or not HTTP (raise_for_status is off)
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx.ReadError(message, request=request)
    return exc
