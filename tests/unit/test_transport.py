"""``HttpSender`` over aiohttp's pool against real servers on 127.0.0.1: every outcome must get
the same ``AttemptResult`` (status, ``error_class`` name, retry-after, excerpt) as over httpx's
own pool, and the request on the wire must be the one given. Each test runs on both."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from types import TracebackType
from typing import Literal

import httpx
import pytest

from pipeline.delivery.http import (
    EXCERPT_BYTES,
    AiohttpSender,
    HttpxSender,
    Poster,
    new_http_sender,
)
from pipeline.delivery.policy import AttemptResult
from pipeline.delivery.ssrf import guarded_transport
from pipeline.delivery.transport import AiohttpTransport
from pipeline.settings import Settings

Client = Literal["aiohttp", "httpx"]
CLIENTS: list[Client] = ["aiohttp", "httpx"]
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "Velourcity-Webhooks/1.0 (+test)",
    "webhook-id": "msg_1",
}
BODY = b'{"type":"order.created"}'
# What httpx's client adds to every request: the same whichever pool sends it.
HTTPX_ADDS = ["host", "accept", "accept-encoding", "connection", "content-length"]


def ok(body: bytes = b"fine", *fields: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *fields]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Server:
    """A real HTTP/1.1 server on 127.0.0.1 that records what it receives and answers every
    request with ``reply`` (None: never answers), then, by ``after``: keeps the connection,
    closes it, or resets it (RST). ``eager``: writes ``reply`` on connect, reads nothing."""

    def __init__(
        self,
        reply: bytes | None,
        *,
        after: Literal["keep", "close", "reset"] = "keep",
        eager: bool = False,
    ) -> None:
        self.reply = reply
        self.after = after
        self.eager = eager
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._done = asyncio.Event()

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self._handlers), 5)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while not self.eager:
                head = await reader.readuntil(b"\r\n\r\n")
                fields = dict((n.lower(), v) for n, v in parse_head(head)[1])
                self.requests.append(
                    (head, await reader.readexactly(int(fields["content-length"])))
                )
                if self.reply is None:
                    await self._done.wait()
                    return
                writer.write(self.reply)
                await writer.drain()
                if self.after == "reset":
                    linger = struct.pack("ii", 1, 0)  # close with a RST, not a FIN
                    writer.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, linger
                    )
                    writer.transport.abort()
                if self.after != "keep":
                    return
            writer.write(self.reply or b"")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The request line, and the header fields as sent (names in their case, in order)."""
    line, *fields = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    return line, [(name, value.strip()) for name, _, value in (f.partition(":") for f in fields)]


def sender(client: Client, **settings: object) -> Poster:
    values: dict[str, object] = {"allowed_networks": "127.0.0.0/8", "http_client": client}
    return new_http_sender(Settings(**(values | settings)))  # type: ignore[arg-type]


def post(
    client: Client,
    server: Server,
    target: str = "/hook",
    *,
    times: int = 1,
    scheme: str = "http",
    headers: dict[str, str] = HEADERS,
    **settings: object,
) -> list[AttemptResult]:
    """``times`` POSTs to ``server``, one after the other, through one sender (one pool)."""

    async def go() -> list[AttemptResult]:
        async with server:
            http = sender(client, **settings)
            url = f"{scheme}://127.0.0.1:{server.port}{target}"
            try:
                return [await http.post(url, BODY, headers) for _ in range(times)]
            finally:
                await http.aclose()

    return asyncio.run(go())


def served(client: Client, reply: bytes | None, **options: object) -> AttemptResult:
    """The result of one POST to a ``Server(reply, **options)``."""
    [result] = post(client, Server(reply, **options))  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize("client", CLIENTS)
def test_the_setting_chooses_the_pool(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOURCITY_HTTP_CLIENT", client)
    chosen = new_http_sender(Settings())
    assert type(chosen) is {"aiohttp": AiohttpSender, "httpx": HttpxSender}[client]


def test_aiohttp_straight_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VELOURCITY_HTTP_CLIENT", raising=False)
    assert isinstance(new_http_sender(Settings()), AiohttpSender)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_response_is_reported_with_its_status_and_excerpt(client: Client) -> None:
    server = Server(ok(b"thanks"))
    [result] = post(client, server)
    assert (result.status, result.error, result.excerpt) == (200, None, "thanks")
    assert [body for _, body in server.requests] == [BODY]


@pytest.mark.parametrize("client", CLIENTS)
def test_connection_refused_is_a_connect_error(client: Client) -> None:
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def go() -> AttemptResult:
        http = sender(client)
        try:
            return await http.post(f"http://127.0.0.1:{port}/hook", BODY, HEADERS)
        finally:
            await http.aclose()

    result = asyncio.run(go())
    assert (result.status, result.error) == (None, "connect_error")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_server_that_never_answers_is_a_timeout(client: Client) -> None:
    server = Server(None)
    [result] = post(client, server, http_timeout=0.3)
    assert (result.status, result.error) == (None, "timeout")
    assert 250 <= result.latency_ms < 2000
    assert len(server.requests) == 1  # the request went out; no answer came


@pytest.mark.parametrize("client", CLIENTS)
def test_a_read_timeout_is_httpx_read_timeout(client: Client) -> None:
    """Shorter than the sender's total: ``read`` bounds each read, as in httpx's own pool."""
    timeout = httpx.Timeout(5.0, read=0.2)
    limits = httpx.Limits(max_connections=5)
    allowed = Settings(allowed_networks="127.0.0.0/8").allowed_networks
    transport = (
        AiohttpTransport(allowed_networks=allowed, limits=limits, timeout=timeout)
        if client == "aiohttp"
        else guarded_transport(allowed_networks=allowed, limits=limits)
    )

    async def go(server: Server) -> None:
        async with server, httpx.AsyncClient(transport=transport, timeout=timeout) as http:
            await http.post(f"http://127.0.0.1:{server.port}/hook", content=BODY)

    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(go(Server(None)))


@pytest.mark.parametrize("client", CLIENTS)
def test_a_response_cut_short_is_a_protocol_error(client: Client) -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it"
    result = served(client, cut, after="close")
    assert (result.status, result.error) == (None, "protocol_error")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_close_before_any_answer_is_a_protocol_error(client: Client) -> None:
    result = served(client, b"", after="close")
    assert (result.status, result.error) == (None, "protocol_error")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_reset_before_any_answer_is_a_read_error(client: Client) -> None:
    result = served(client, b"", after="reset")
    assert (result.status, result.error) == (None, "readerror")


@pytest.mark.parametrize("client", CLIENTS)
def test_an_answer_that_is_not_http_is_a_protocol_error(client: Client) -> None:
    result = served(client, b"SSH-2.0-OpenSSH_9.6\r\n\r\n", after="close")
    assert (result.status, result.error) == (None, "protocol_error")


@pytest.mark.parametrize("client", CLIENTS)
def test_plain_http_spoken_to_as_https_is_a_tls_error(client: Client) -> None:
    [result] = post(client, Server(ok(), eager=True), scheme="https")
    assert (result.status, result.error) == (None, "tls_error")


@pytest.mark.parametrize("client", CLIENTS)
def test_503_with_retry_after(client: Client) -> None:
    reply = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Length: 4\r\n\r\nbusy"
    result = served(client, reply)
    assert (result.status, result.error, result.retry_after, result.excerpt) == (
        503,
        None,
        120.0,
        "busy",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_the_excerpt_is_capped(client: Client) -> None:
    body = b"x" * EXCERPT_BYTES + b"-and the rest, which is never kept" * 500
    result = served(client, ok(body))
    assert (result.status, result.excerpt) == (200, "x" * EXCERPT_BYTES)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_compressed_body_is_decoded_once(client: Client) -> None:
    result = served(client, ok(gzip.compress(b"ok, gzipped"), "Content-Encoding: gzip"))
    assert (result.status, result.error, result.excerpt) == (200, None, "ok, gzipped")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_long_response_header_is_accepted(client: Client) -> None:
    result = served(client, ok(b"ok", "Set-Cookie: session=" + "a" * 20_000))
    assert (result.status, result.error) == (200, None)


@pytest.mark.parametrize("client", CLIENTS)
def test_keep_alive_one_connection_for_several_posts(client: Client) -> None:
    server = Server(ok())
    results = post(client, server, times=5)
    assert [r.status for r in results] == [200] * 5
    assert (server.connections, len(server.requests)) == (1, 5)


@pytest.mark.parametrize("client", CLIENTS)
def test_the_ssrf_guard_refuses_before_connecting(client: Client) -> None:
    server = Server(ok())
    [result] = post(client, server, allowed_networks=[])
    assert (result.status, result.error) == (None, "ssrf_refused")
    assert server.connections == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_headers_are_sent_as_given(client: Client) -> None:
    server = Server(ok())
    post(client, server, "/hook/a%7e?x=a+b&y=%zz")
    [(head, _)] = server.requests
    line, fields = parse_head(head)
    assert line == "POST /hook/a%7e?x=a+b&y=%zz HTTP/1.1"  # the target exactly as given
    sent = [(name.lower(), value) for name, value in fields]
    for name, value in HEADERS.items():
        assert [v for n, v in sent if n == name.lower()] == [value]  # once, as given
    assert sorted(n for n, _ in sent) == sorted([n.lower() for n in HEADERS] + HTTPX_ADDS)
    assert dict(sent)["content-length"] == str(len(BODY))


@pytest.mark.parametrize("headers", [HEADERS, {"webhook-id": "msg_1"}])
def test_both_pools_send_the_same_request(headers: dict[str, str]) -> None:
    """Without a Content-Type or User-Agent given too: aiohttp adds none of its own."""

    def wire(client: Client) -> tuple[str, list[tuple[str, str]], bytes]:
        server = Server(ok())
        post(client, server, headers=headers)
        [(head, body)] = server.requests
        line, fields = parse_head(head)
        port = str(server.port)
        return line, [(n, v.replace(port, "PORT")) for n, v in fields], body

    # names in their case, in the same order: a receiver reading a plain dict of headers
    # (e.g. Python's http.server) finds X-Velourcity-Delivery-Attempt either way; with no
    # User-Agent given (the sender always gives one), aiohttp adds none, httpx its own
    line, fields, body = wire("httpx")
    if "User-Agent" not in headers:
        fields = [(n, v) for n, v in fields if not v.startswith("python-httpx/")]
    assert wire("aiohttp") == (line, fields, body)


@pytest.mark.parametrize("client", CLIENTS)
def test_cookies_from_a_receiver_are_never_sent_back(client: Client) -> None:
    """A webhook sender keeps no session: a Set-Cookie in an answer changes nothing."""
    server = Server(ok(b"fine", "Set-Cookie: session=abc; Path=/"))
    post(client, server, times=2)
    heads = [parse_head(head)[1] for head, _ in server.requests]
    assert len(heads) == 2
    assert not [n for fields in heads for n, _ in fields if n.lower() == "cookie"]
