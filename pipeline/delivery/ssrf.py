"""SSRF guard: endpoints may only reach public addresses (or ``VELOURCITY_ALLOWED_NETWORKS``).

Checked twice, with the same :func:`forbidden_reason`:

1. at registration, :func:`validate_endpoint_url` raises :class:`UnsafeURL` (refused target)
   or :class:`InvalidEndpoint` (malformed URL);
2. at connect time, :class:`GuardedBackend` resolves the host, refuses if *any* address is
   forbidden and the checked IPs themselves are dialled, so a DNS answer that changes after the
   check (rebinding) never gets a connection. Both HTTP transports use it: httpx's own pool
   (:func:`guarded_transport`) as its network backend, the aiohttp one
   (:mod:`pipeline.delivery.transport`) through :meth:`GuardedBackend.checked_addresses`. TLS
   still verifies the URL's hostname. A refusal is an :class:`SSRFRefusal` (an
   ``httpcore.ConnectError``), which both re-raise as ``httpx.ConnectError`` chained to it;
   recognise it with :func:`is_ssrf_refusal`.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Protocol
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx
from httpcore._backends.auto import AutoBackend

from pipeline.exceptions import InvalidEndpoint, UnsafeURL

__all__ = [
    "GuardedBackend",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "SSRFRefusal",
    "SyncResolver",
    "SystemResolver",
    "forbidden_reason",
    "guarded_transport",
    "is_ssrf_refusal",
    "parse_host_ip",
    "validate_endpoint_url",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_REFUSED: list[tuple[IPNetwork, str]] = [
    (ip_network(cidr), reason)
    for cidrs, reason in [
        ("0.0.0.0/8", "unspecified (0.0.0.0/8)"),
        ("127.0.0.0/8 ::1/128", "loopback"),
        ("10.0.0.0/8 172.16.0.0/12 192.168.0.0/16", "in a private network (RFC 1918)"),
        ("169.254.0.0/16", "link-local / cloud metadata (169.254.0.0/16)"),
        ("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)"),
        ("192.0.0.0/24", "in the IETF protocol assignments range (192.0.0.0/24)"),
        ("192.0.2.0/24 198.51.100.0/24 203.0.113.0/24", "in a documentation range (RFC 5737)"),
        ("2001:db8::/32 3fff::/20", "in a documentation range (RFC 3849, RFC 9637)"),
        ("198.18.0.0/15", "in the benchmarking range (198.18.0.0/15)"),
        ("224.0.0.0/4 ff00::/8", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
        ("::/128", "unspecified (::)"),
        ("::/96", "an IPv4-compatible IPv6 address (deprecated)"),
        ("fc00::/7", "a unique local address (fc00::/7)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("fec0::/10", "site-local (fec0::/10, deprecated)"),
    ]
    for cidr in cidrs.split()
]
_NAT64 = ip_network("64:ff9b::/96")
_V4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
_PREFIX = "refused by SSRF guard:"
_HTTP = "plain http is accepted only for hosts in the allowed networks"


class SSRFRefusal(httpcore.ConnectError):
    """A connect-time refusal; the message starts with ``refused by SSRF guard:``."""


class Resolver(Protocol):
    """Async name resolution used at connect time; answers IP address strings."""

    async def resolve(self, host: str, port: int) -> list[str]: ...


class SyncResolver(Protocol):
    """Blocking name resolution used at registration; answers IP address strings."""

    def resolve_sync(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """The operating system's ``getaddrinfo``; raises ``OSError`` when a name does not resolve."""

    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def resolve_sync(self, host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _inet_aton(host: str) -> IPv4Address | None:
    """IPv4 in every spelling ``inet_aton`` accepts: ``127.1``, ``0x7f.1``, ``2130706433``..."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.fullmatch(part) for part in parts):
        return None
    *head, last = [
        int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8 if p[0] == "0" else 10)
        for p in parts
    ]
    if any(value > 255 for value in head) or last >= 1 << (8 * (5 - len(parts))):
        return None
    return IPv4Address(sum(value << (24 - 8 * i) for i, value in enumerate(head)) | last)


def parse_host_ip(host: str) -> IPAddress | None:
    """The IP address a host literal means (odd IPv4 spellings, ``[v6]``, zone ids), else None."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" not in host:
        return _inet_aton(host.removesuffix("."))
    try:
        return IPv6Address(host)
    except ValueError:
        return None


def _embedded_v4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 (64:ff9b::/96) IPv6 address."""
    if isinstance(ip, IPv4Address):
        return None
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


def _in_networks(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    embedded = _embedded_v4(ip)
    return any(ip in net or (embedded is not None and embedded in net) for net in networks)


def forbidden_reason(ip: IPAddress, allowed_networks: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``ip`` may not be dialled, worded to follow "<ip> is", or None when it may be."""
    if _in_networks(ip, allowed_networks):
        return None
    if isinstance(ip, IPv6Address) and ip.scope_id:
        return "a scoped IPv6 address (zone id)"
    embedded = _embedded_v4(ip)
    if embedded is not None:
        inner = forbidden_reason(embedded, allowed_networks)
        return None if inner is None else f"{inner}, via embedded IPv4 {embedded}"
    reason = next((reason for net, reason in _REFUSED if ip in net), None)
    return reason or (None if ip.is_global else "not globally routable")


def _refused(shown: str, what: str, allowed: Sequence[IPNetwork]) -> UnsafeURL:
    tail = f" or inside VELOURCITY_ALLOWED_NETWORKS ({', '.join(map(str, allowed))})"
    return UnsafeURL(
        f"endpoint URL {shown} is refused: {what}; "
        f"endpoints must be public https URLs{tail if allowed else ''}"
    )


def validate_endpoint_url(
    url: str,
    *,
    allowed_networks: Sequence[IPNetwork],
    require_https: bool = True,
    resolver: SyncResolver | None = None,
) -> str:
    """Check an endpoint URL at registration and return it normalized.

    Raises :class:`UnsafeURL` for a refused target (address, ``localhost``, plain http) and
    :class:`InvalidEndpoint` for a malformed URL or a name that does not resolve. Names are
    resolved with ``resolver`` (default ``socket.getaddrinfo``); every address must be allowed.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:  # e.g. 0177.0.0.1, which httpx rejects but inet_aton takes
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        ip = parse_host_ip(host)
        reason = None if ip is None else forbidden_reason(ip, allowed_networks)
        if reason is not None:
            what = f"{host} (= {ip}) is {reason}"
            raise _refused(f"(host {host})", what, allowed_networks) from exc
        raise InvalidEndpoint(f"endpoint URL is not a valid URL: {exc}") from exc
    shown = str(parsed.copy_with(userinfo=b""))  # never echo credentials
    host, port = parsed.raw_host.decode("ascii"), parsed.port
    if parsed.scheme not in ("https", "http"):
        problem = f"has scheme {parsed.scheme!r}; endpoints must be https URLs"
    elif parsed.userinfo:
        problem = "contains user:password@; credentials in URLs are not accepted"
    elif not host:
        problem = "has no host; expected https://host/path"
    elif port is not None and not 1 <= port <= 65535:
        problem = f"has port {port}; ports are 1-65535"
    else:
        problem = ""
    if problem:
        raise InvalidEndpoint(f"endpoint URL {shown} {problem}")
    plain_http = parsed.scheme == "http" and require_https
    if plain_http and not allowed_networks:
        raise _refused(shown, _HTTP, allowed_networks)
    literal = parse_host_ip(host)
    odd_v4 = isinstance(literal, IPv4Address) and host != str(literal)  # 127.1, 0x7f.1, ...
    if literal is not None:
        addresses, subject = [literal], f"{host} (= {literal})" if odd_v4 else host
    elif host.lower().rstrip(".").split(".")[-1] == "localhost":
        raise _refused(shown, f"{host} is a localhost name", allowed_networks)
    else:
        default_port = 443 if parsed.scheme == "https" else 80
        addresses, subject = _resolve_sync(resolver, host, port or default_port, shown), ""
    for ip in addresses:
        reason = forbidden_reason(ip, allowed_networks)
        if reason is not None:
            who = subject or f"{host} resolves to {ip}, which"
            raise _refused(shown, f"{who} is {reason}", allowed_networks)
    if plain_http and not all(_in_networks(ip, allowed_networks) for ip in addresses):
        raise _refused(shown, _HTTP, allowed_networks)
    return str(parsed.copy_with(host=str(literal)) if odd_v4 else parsed)


def _resolve_sync(
    resolver: SyncResolver | None, host: str, port: int, shown: str
) -> list[IPAddress]:
    try:
        answers = (resolver or SystemResolver()).resolve_sync(host, port)
    except OSError as exc:
        message = f"endpoint URL {shown} is refused: {host} does not resolve ({exc})"
        raise InvalidEndpoint(message) from exc
    addresses = [ip for ip in map(parse_host_ip, answers) if ip is not None]
    if not answers or len(addresses) != len(answers):
        message = f"endpoint URL {shown} is refused: {host} resolves to {answers!r}"
        raise InvalidEndpoint(message)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Wraps httpcore's default backend: checks every address of a host, then dials the IP."""

    def __init__(
        self,
        *,
        allowed_networks: Sequence[IPNetwork],
        resolver: Resolver | None = None,
    ) -> None:
        self._allowed = tuple(allowed_networks)
        self._resolver: Resolver = resolver or SystemResolver()
        self._inner = AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):  # one budget for resolving and dialling
                return await self._dial(host, port, local_address, socket_options)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc

    async def _dial(
        self,
        host: str,
        port: int,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        errors: list[httpcore.ConnectError] = []
        for ip in await self.checked_addresses(host, port):
            try:  # dial the checked IP itself, never the name again
                return await self._inner.connect_tcp(
                    str(ip), port, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                errors.append(exc)
        raise errors[-1]

    async def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses ``host`` may be dialled at, resolved now (an IP literal is its own).

        Raises :class:`SSRFRefusal` when any of them is forbidden, ``httpcore.ConnectError``
        when the name does not resolve. Dial only what this returns, never the name."""
        literal = parse_host_ip(host)
        if literal is not None:
            answers: list[str] = [host]
        else:
            try:
                answers = await self._resolver.resolve(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [ip for ip in map(parse_host_ip, answers) if ip is not None]
        if not answers or len(addresses) != len(answers):
            raise SSRFRefusal(f"{_PREFIX} {host} resolves to {answers!r}")
        for ip in addresses:
            reason = forbidden_reason(ip, self._allowed)
            if reason is not None:
                raise SSRFRefusal(f"{_PREFIX} {host}:{port} -> {ip} is {reason}")
        return addresses

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    *,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver | None = None,
    limits: httpx.Limits,
    verify: ssl.SSLContext | bool = True,
    http1: bool = True,
    http2: bool = False,
    retries: int = 0,
) -> httpx.AsyncHTTPTransport:
    """An ``httpx.AsyncHTTPTransport`` whose connection pool dials through :class:`GuardedBackend`.

    No ``proxy`` or ``uds``: either would bypass the guard. Use ``follow_redirects=False``.
    """
    ssl_context = httpx.create_ssl_context(verify=verify)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(  # same arguments httpx uses, plus the guard
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=http1,
        http2=http2,
        retries=retries,
        network_backend=GuardedBackend(allowed_networks=allowed_networks, resolver=resolver),
    )
    return transport


def is_ssrf_refusal(exc: BaseException) -> bool:
    """True when ``exc`` or anything on its ``__cause__``/``__context__`` chain is a refusal."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, SSRFRefusal | UnsafeURL):
            return True
        seen.add(id(current))
        todo += [current.__cause__, current.__context__]
    return False
