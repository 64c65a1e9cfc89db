"""SSRF guard: URL checks at registration, and connect-time checks against a loopback server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Protocol

import httpcore
import httpx
import pytest

from pipeline.delivery.ssrf import (
    IPNetwork,
    SSRFRefusal,
    forbidden_reason,
    guarded_transport,
    is_ssrf_refusal,
    parse_host_ip,
    validate_endpoint_url,
)
from pipeline.delivery.transport import AiohttpTransport
from pipeline.exceptions import InvalidEndpoint, UnsafeURL

LOOPBACK: list[IPNetwork] = [ip_network("127.0.0.0/8")]
PUBLIC = "93.184.216.34"


class FakeResolver:
    """Different answers at registration (sync) and at connect time (async), like a rebinder."""

    def __init__(
        self, sync: dict[str, list[str]], connect: dict[str, list[str]] | None = None
    ) -> None:
        self.sync = sync
        self.connect = sync if connect is None else connect
        self.delay = 0.0

    def resolve_sync(self, host: str, port: int) -> list[str]:
        if host not in self.sync:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.sync[host]

    async def resolve(self, host: str, port: int) -> list[str]:
        await asyncio.sleep(self.delay)
        if host not in self.connect:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.connect[host]


NAMES = FakeResolver(
    {
        "public.test": [PUBLIC],
        "internal.test": ["10.1.2.3"],
        "metadata.test": ["169.254.169.254"],
        "mixed.test": [PUBLIC, "192.168.1.10"],
        "v6loop.test": ["::1"],
        "junk.test": ["not-an-ip"],
        "empty.test": [],
        "example.com": [PUBLIC],
    }
)

REFUSED = [
    # odd IPv4 spellings of 127.0.0.1
    ("https://127.0.0.1/", "127.0.0.1 is loopback"),
    ("https://2130706433/", "2130706433 (= 127.0.0.1) is loopback"),
    ("https://0x7f000001/", "(= 127.0.0.1) is loopback"),
    ("https://0X7F000001/", "(= 127.0.0.1) is loopback"),
    ("https://017700000001/", "(= 127.0.0.1) is loopback"),
    ("https://127.1/", "127.1 (= 127.0.0.1) is loopback"),
    ("https://127.0.1/", "127.0.1 (= 127.0.0.1) is loopback"),
    ("https://0177.0.0.1/", "0177.0.0.1 (= 127.0.0.1) is loopback"),
    ("https://0x7f.1/", "0x7f.1 (= 127.0.0.1) is loopback"),
    ("https://0x7f.0.0.1/", "(= 127.0.0.1) is loopback"),
    ("https://127.0.0.1./", "(= 127.0.0.1) is loopback"),
    ("https://127.255.255.254:8443/x", "is loopback"),
    # localhost names
    ("https://localhost/", "localhost name"),
    ("https://LOCALHOST./", "localhost name"),
    ("https://api.localhost/", "localhost name"),
    # IPv4 ranges
    ("https://10.0.0.5/x", "10.0.0.5 is in a private network (RFC 1918)"),
    ("https://172.16.0.1/", "private network (RFC 1918)"),
    ("https://192.168.1.1/", "private network (RFC 1918)"),
    ("https://169.254.169.254/latest/meta-data/", "link-local / cloud metadata"),
    ("https://0xa9fea9fe/", "(= 169.254.169.254) is link-local / cloud metadata"),
    ("https://100.64.0.1/", "carrier-grade NAT"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://0/", "(= 0.0.0.0) is unspecified"),
    ("https://224.0.0.1/", "multicast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://255.255.255.255/", "broadcast"),
    ("https://192.0.2.10/", "documentation range"),
    ("https://198.18.0.1/", "benchmarking range"),
    ("https://192.0.0.8/", "IETF protocol assignments"),
    ("https://[2001::1]/", "not globally routable"),
    # IPv6
    ("https://[::]/", "unspecified"),
    ("https://[::1]/", "::1 is loopback"),
    ("https://[fc00::1]/", "unique local address"),
    ("https://[fd12:3456::1]/", "unique local address"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fe80::1%25eth0]/", "zone id"),
    ("https://[ff02::1]/", "multicast"),
    ("https://[2001:db8::1]/", "documentation range"),
    ("https://[::ffff:10.0.0.1]/", "private network (RFC 1918), via embedded IPv4 10.0.0.1"),
    ("https://[::ffff:127.0.0.1]/", "loopback, via embedded IPv4 127.0.0.1"),
    ("https://[::ffff:a9fe:a9fe]/", "(169.254.0.0/16), via embedded IPv4 169.254.169.254"),
    ("https://[2002:7f00:1::1]/", "loopback, via embedded IPv4 127.0.0.1"),
    ("https://[64:ff9b::a9fe:a9fe]/", "(169.254.0.0/16), via embedded IPv4 169.254.169.254"),
    ("https://[::127.0.0.1]/", "IPv4-compatible"),
    # names resolving to refused addresses (every address must be allowed)
    ("https://internal.test/", "internal.test resolves to 10.1.2.3, which is in a private"),
    ("https://metadata.test/", "resolves to 169.254.169.254, which is link-local"),
    ("https://mixed.test/", "resolves to 192.168.1.10, which is in a private network"),
    ("https://v6loop.test/", "resolves to ::1, which is loopback"),
    ("https://nowhere.test/", "nowhere.test does not resolve"),
    ("https://junk.test/", "resolves to ['not-an-ip']"),
    ("https://empty.test/", "resolves to []"),
    # shape of the URL
    ("http://example.com/hook", "plain http is accepted only for hosts in the allowed networks"),
    ("http://93.184.216.34/hook", "plain http is accepted only"),
    ("ftp://example.com/x", "has scheme 'ftp'"),
    ("file:///etc/passwd", "has scheme 'file'"),
    ("gopher://127.0.0.1:6379/_x", "has scheme 'gopher'"),
    ("example.com/hook", "has scheme ''"),
    ("https://user:secret@example.com/", "credentials in URLs are not accepted"),
    ("https://user@example.com/", "credentials in URLs are not accepted"),
    ("https:///hook", "has no host"),
    ("https://example.com:0/", "has port 0; ports are 1-65535"),
    ("https://example.com:65536/", "has port 65536; ports are 1-65535"),
    ("https://exa mple.com:x/", "is not a valid URL"),
    ("https://[::1/", "is not a valid URL"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_at_registration(url: str, reason: str) -> None:
    with pytest.raises(InvalidEndpoint) as caught:
        validate_endpoint_url(url, allowed_networks=[], resolver=NAMES)
    message = str(caught.value)
    assert reason in message
    assert "secret" not in message


@pytest.mark.parametrize(
    "url",
    ["https://127.1/", "https://[::1]/", "https://169.254.169.254/", "http://example.com/"],
)
def test_refused_targets_are_unsafe_url_and_say_what_is_accepted(url: str) -> None:
    with pytest.raises(UnsafeURL, match="endpoints must be public https URLs"):
        validate_endpoint_url(url, allowed_networks=[], resolver=NAMES)


def test_message_names_url_reason_and_what_is_accepted() -> None:
    with pytest.raises(UnsafeURL) as caught:
        validate_endpoint_url("https://10.0.0.5/x", allowed_networks=[])
    assert str(caught.value) == (
        "endpoint URL https://10.0.0.5/x is refused: 10.0.0.5 is in a private network"
        " (RFC 1918); endpoints must be public https URLs"
    )


ACCEPTED = [
    ("https://93.184.216.34/", [], "https://93.184.216.34/"),
    ("https://93.184.216.34:8443/hooks?x=1", [], "https://93.184.216.34:8443/hooks?x=1"),
    ("HTTPS://Public.TEST/hooks", [], "https://public.test/hooks"),
    ("https://1572395042/", [], "https://93.184.216.34/"),
    ("https://0x5db8d822/a", [], "https://93.184.216.34/a"),
    ("https://[2606:4700::1111]/", [], "https://[2606:4700::1111]/"),
    ("https://[2002:5db8:d822::1]/", [], "https://[2002:5db8:d822::1]/"),
    ("http://127.0.0.1:8080/x", LOOPBACK, "http://127.0.0.1:8080/x"),
    ("http://127.1:8080/x", LOOPBACK, "http://127.0.0.1:8080/x"),
    ("https://127.0.0.1:8443/x", LOOPBACK, "https://127.0.0.1:8443/x"),
    ("http://[::ffff:127.0.0.1]:8080/", LOOPBACK, "http://[::ffff:127.0.0.1]:8080/"),
]


@pytest.mark.parametrize(("url", "allowed", "expected"), ACCEPTED)
def test_accepted_at_registration(url: str, allowed: list[IPNetwork], expected: str) -> None:
    assert validate_endpoint_url(url, allowed_networks=allowed, resolver=NAMES) == expected


def test_http_needs_every_address_inside_an_allowed_network() -> None:
    resolver = FakeResolver({"dev.test": ["127.0.0.1"], "half.test": ["127.0.0.1", PUBLIC]})
    assert (
        validate_endpoint_url("http://dev.test:9000/", allowed_networks=LOOPBACK, resolver=resolver)
        == "http://dev.test:9000/"
    )
    with pytest.raises(UnsafeURL, match="plain http is accepted only"):
        validate_endpoint_url("http://half.test/", allowed_networks=LOOPBACK, resolver=resolver)
    with pytest.raises(UnsafeURL, match=r"or inside VELOURCITY_ALLOWED_NETWORKS \(127.0.0.0/8\)"):
        validate_endpoint_url(f"http://{PUBLIC}/", allowed_networks=LOOPBACK)


def test_require_https_false_accepts_public_http() -> None:
    url = f"http://{PUBLIC}/"
    assert validate_endpoint_url(url, allowed_networks=[], require_https=False) == url
    with pytest.raises(UnsafeURL, match="loopback"):
        validate_endpoint_url("http://127.0.0.1/", allowed_networks=[], require_https=False)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", IPv4Address("127.0.0.1")),
        ("2130706433", IPv4Address("127.0.0.1")),
        ("0x7f000001", IPv4Address("127.0.0.1")),
        ("017700000001", IPv4Address("127.0.0.1")),
        ("127.1", IPv4Address("127.0.0.1")),
        ("127.0.1", IPv4Address("127.0.0.1")),
        ("0177.0.0.1", IPv4Address("127.0.0.1")),
        ("0x7f.1", IPv4Address("127.0.0.1")),
        ("10.0.0.1.", IPv4Address("10.0.0.1")),
        ("[::1]", IPv6Address("::1")),
        ("::ffff:127.0.0.1", IPv6Address("::ffff:7f00:1")),
        ("example.com", None),
        ("256.0.0.1", None),
        ("08.0.0.1", None),
        ("4294967296", None),
        ("1.2.3.4.5", None),
        ("", None),
        ("[::1", None),
    ],
)
def test_parse_host_ip(host: str, expected: IPv4Address | IPv6Address | None) -> None:
    assert parse_host_ip(host) == expected


def test_forbidden_reason_and_allowed_networks() -> None:
    assert forbidden_reason(ip_address("10.0.0.1")) == "in a private network (RFC 1918)"
    assert forbidden_reason(ip_address("10.0.0.1"), [ip_network("10.0.0.0/8")]) is None
    assert forbidden_reason(ip_address("::ffff:127.0.0.1"), LOOPBACK) is None
    assert forbidden_reason(ip_address(PUBLIC)) is None
    assert forbidden_reason(ip_address("2606:4700::1111")) is None


def test_is_ssrf_refusal_walks_the_chain() -> None:
    def mapped() -> None:
        try:
            raise SSRFRefusal("refused by SSRF guard: x")
        except SSRFRefusal as exc:
            raise httpx.ConnectError(str(exc)) from exc

    with pytest.raises(httpx.ConnectError) as caught:
        mapped()
    assert is_ssrf_refusal(caught.value)
    assert is_ssrf_refusal(UnsafeURL("no"))
    assert not is_ssrf_refusal(httpx.ConnectError("connection refused"))
    looped = ValueError("a")
    looped.__context__ = ValueError("b")
    looped.__context__.__context__ = looped
    assert not is_ssrf_refusal(looped)


# --- connect time, against a real HTTP server on 127.0.0.1 ------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class CountingServer(ThreadingHTTPServer):
    """Counts every TCP connection it accepts."""

    daemon_threads = True
    connections = 0

    def process_request(self, request: object, client_address: object) -> None:
        self.connections += 1
        super().process_request(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[CountingServer]:
    httpd = CountingServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


TIMEOUT = httpx.Timeout(2.0)


class MakeTransport(Protocol):
    def __call__(
        self, *, allowed: list[IPNetwork], resolver: FakeResolver | None, timeout: httpx.Timeout
    ) -> httpx.AsyncBaseTransport: ...


@pytest.fixture(params=["httpx", "aiohttp"])
def make_transport(request: pytest.FixtureRequest) -> MakeTransport:
    """Builds the sender's transport, httpx's own pool or aiohttp's: both must pass the same
    connect-time checks."""

    def make(
        *, allowed: list[IPNetwork], resolver: FakeResolver | None, timeout: httpx.Timeout
    ) -> httpx.AsyncBaseTransport:
        limits = httpx.Limits(max_connections=5)
        if request.param == "aiohttp":
            return AiohttpTransport(
                allowed_networks=allowed, resolver=resolver, limits=limits, timeout=timeout
            )
        return guarded_transport(allowed_networks=allowed, resolver=resolver, limits=limits)

    return make


def _get(
    make_transport: MakeTransport,
    *urls: str,
    allowed: list[IPNetwork],
    resolver: FakeResolver | None = None,
    timeout: httpx.Timeout = TIMEOUT,
) -> list[int]:
    """GET each URL in turn through one client (one pool); their statuses."""

    async def go() -> list[int]:
        transport = make_transport(allowed=allowed, resolver=resolver, timeout=timeout)
        async with httpx.AsyncClient(
            transport=transport, follow_redirects=False, timeout=timeout
        ) as client:
            return [(await client.get(url)).status_code for url in urls]

    return asyncio.run(go())


def test_guarded_request_to_allowed_loopback_succeeds(
    server: CountingServer, make_transport: MakeTransport
) -> None:
    url = f"http://127.0.0.1:{server.server_port}/"
    assert _get(make_transport, url, allowed=LOOPBACK) == [200]
    assert server.connections == 1


def test_guarded_request_dials_the_resolved_ip_and_odd_spellings(
    server: CountingServer, make_transport: MakeTransport
) -> None:
    resolver = FakeResolver({"hooks.test": ["127.0.0.1"]})
    port = server.server_port
    urls = [f"http://hooks.test:{port}/", f"http://2130706433:{port}/"]
    assert _get(make_transport, *urls, allowed=LOOPBACK, resolver=resolver) == [200, 200]
    assert server.connections == 2


def test_every_new_connection_resolves_again(
    server: CountingServer, make_transport: MakeTransport
) -> None:
    """No DNS cache: the second connection (the server closes each) sees the new answer."""
    resolver = FakeResolver({"hooks.test": ["127.0.0.1"]})
    url = f"http://hooks.test:{server.server_port}/"

    async def go() -> None:
        transport = make_transport(allowed=LOOPBACK, resolver=resolver, timeout=TIMEOUT)
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
            assert (await client.get(url)).status_code == 200
            resolver.connect = {"hooks.test": ["169.254.169.254"]}
            await client.get(url)

    with pytest.raises(httpx.ConnectError) as caught:
        asyncio.run(go())
    assert is_ssrf_refusal(caught.value)
    assert "169.254.169.254 is link-local" in str(caught.value)
    assert server.connections == 1


def test_dns_rebinding_is_refused_at_connect_time(
    server: CountingServer, make_transport: MakeTransport
) -> None:
    resolver = FakeResolver({"rebind.test": [PUBLIC]}, connect={"rebind.test": ["127.0.0.1"]})
    url = f"https://rebind.test:{server.server_port}/hook"
    assert validate_endpoint_url(url, allowed_networks=[], resolver=resolver) == url
    with pytest.raises(httpx.ConnectError) as caught:
        _get(make_transport, url, allowed=[], resolver=resolver)
    assert is_ssrf_refusal(caught.value)
    assert str(caught.value).startswith("refused by SSRF guard:")
    assert "127.0.0.1 is loopback" in str(caught.value)
    assert server.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://mixed.test:{port}/",
        "http://127.0.0.1:{port}/",
        "http://2130706433:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_forbidden_addresses_are_refused_at_connect_time(
    server: CountingServer, make_transport: MakeTransport, url: str
) -> None:
    resolver = FakeResolver({"mixed.test": [PUBLIC, "127.0.0.1"]})
    with pytest.raises(httpx.ConnectError) as caught:
        _get(make_transport, url.format(port=server.server_port), allowed=[], resolver=resolver)
    assert is_ssrf_refusal(caught.value)
    assert isinstance(caught.value.__cause__, SSRFRefusal)
    assert isinstance(caught.value.__cause__, httpcore.ConnectError)
    assert server.connections == 0


def test_unresolvable_name_is_a_plain_connect_error(make_transport: MakeTransport) -> None:
    with pytest.raises(httpx.ConnectError, match=r"cannot resolve gone\.test") as caught:
        _get(make_transport, "https://gone.test/", allowed=[], resolver=FakeResolver({}))
    assert not is_ssrf_refusal(caught.value)


def test_slow_resolution_counts_against_the_connect_timeout(make_transport: MakeTransport) -> None:
    resolver = FakeResolver({"slow.test": [PUBLIC]})
    resolver.delay = 5.0
    timeout = httpx.Timeout(2.0, connect=0.05)
    started = time.monotonic()
    with pytest.raises(httpx.ConnectTimeout):
        _get(make_transport, "https://slow.test/", allowed=[], resolver=resolver, timeout=timeout)
    assert time.monotonic() - started < 1.0  # the connect timeout, not the pool's 2 s
