"""Live and replay read the same HTTP/1 response bytes the same way.

The live side is the probe's own client (probe.net.backend.http_client:
httpx over httpcore over h11, with the limit the probe gives httpcore),
reading from a network stream that hands it the response in the given
pieces. The replay side is probe.replay.http.HTTPTracker (probe.wire.http1)
fed the same pieces as server segments, and observe.exchange_outcome for
the failure. Both must agree on the failure, the status, the headers and
the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import typing
from collections import deque
from dataclasses import dataclass

import httpcore
import pytest

from probe.model import Failure
from probe.net.backend import http_client
from probe.net.errors import failure_from_exception
from probe.replay.http import HTTPTracker
from probe.replay.observe import FetchRequest, exchange_outcome
from probe.replay.records import TCPConnection
from probe.replay.report import default_settings
from probe.wire.http1 import MAX_HEAD

SERVER = "198.51.100.80"
URL = "http://agree.test/"
SEGMENT = 1448  # an Ethernet TCP segment's payload


@dataclass(frozen=True, slots=True)
class Reading:
    failure: Failure | None
    status: int | None
    headers: tuple[tuple[str, str], ...]  # names lowercased: httpx lowercases them
    body: tuple[int, str] | None  # length and sha256, when read to its end


class _Scripted(httpcore.AsyncNetworkStream):
    """Hands out one piece per read, then the end of the stream."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = deque(pieces)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces.popleft()
        assert len(piece) <= max_bytes
        return piece

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def get_extra_info(self, info: str) -> typing.Any:
        return None


class _ScriptedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        return _Scripted(self._pieces)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _live(method: str, pieces: list[bytes]) -> Reading:
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    backend = typing.cast(typing.Any, _ScriptedBackend(pieces))
    async with http_client(backend, ssl.create_default_context(), 5.0) as client:
        try:
            response = await client.send(client.build_request(method, URL), stream=True)
            status, headers = response.status_code, tuple(response.headers.multi_items())
            try:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except Exception as exc:
            return Reading(failure_from_exception(exc), status, headers, None)
    return Reading(None, status, headers, (len(body), hashlib.sha256(body).hexdigest()))


def live(method: str, pieces: list[bytes]) -> Reading:
    return asyncio.run(_live(method, pieces))


def replayed(method: str, pieces: list[bytes]) -> Reading:
    tracker = HTTPTracker(SERVER, 1 << 20, ())
    tracker.client_data(0.01, f"{method} / HTTP/1.1\r\nHost: agree.test\r\n\r\n".encode())
    t = 0.02
    for piece in pieces:
        if tracker.wants_data:  # as the engine feeds it
            tracker.server_data(t, piece)
        t += 0.001
    tracker.server_eof(t)
    (exchange,) = tracker.exchanges()
    conn = TCPConnection(
        client="203.0.113.7", client_port=40000, server=SERVER, server_port=80,
        t_first=0.0, t_syn=0.0, syn_count=1, t_synack=0.001, t_established=0.001,
        t_last=t, resets=(), icmp=None, t_fin_client=None, t_fin_server=t,
        server_ttls=(64,), bytes_client=0, bytes_server=0, t_client_data=0.01,
        t_server_data=0.02, tls=None, http=(exchange,), gap=False,
    )
    failure = exchange_outcome(FetchRequest(URL, conn, exchange, False), default_settings(),
                               t + 1).failure
    body = None
    if failure is None and exchange.body_length is not None and exchange.body_sha256:
        body = (exchange.body_length, exchange.body_sha256)
    headers = tuple((name.lower(), value) for name, value in exchange.headers)
    return Reading(failure, exchange.status, headers, body)


def segments(data: bytes, size: int = SEGMENT) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def with_header_of(total: int) -> bytes:
    """A response whose head is ``total`` bytes long."""
    start, end = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (total - len(start) - len(end)) + end + b"ok"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n6;a=\"b\"\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")

# (method, response pieces, what both must read: None (success) or the failure)
CASES: dict[str, tuple[str, list[bytes], Failure | None]] = {
    "plain": ("GET", [OK], None),
    "every byte apart": ("GET", segments(CHUNKED, 1), None),
    "folded header": ("GET", [b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\nContent-Length: 0\r\n\r\n"],
                      None),
    "folded first header": ("GET", [b"HTTP/1.1 200 OK\r\n X-A: one\r\n\r\n"],
                            Failure.HTTP_INVALID_RESPONSE),
    "duplicate Content-Length": ("GET", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                         b"Content-Length: 2\r\n\r\nok"], None),
    "Content-Length list": ("GET", [b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"], None),
    "conflicting Content-Length": ("GET", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                           b"Content-Length: 3\r\n\r\nabc"],
                                   Failure.HTTP_INVALID_RESPONSE),
    "negative Content-Length": ("GET", [b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"],
                                Failure.HTTP_INVALID_RESPONSE),
    "chunked, extensions, trailers": ("GET", segments(CHUNKED, 7), None),
    "gzip, chunked": ("GET", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n"], Failure.HTTP_INVALID_RESPONSE),
    "gzip and Content-Length": ("GET", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
                                        b"Content-Length: 2\r\n\r\nabcdef"],
                                Failure.HTTP_INVALID_RESPONSE),
    "bad chunk size": ("GET", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
                       Failure.HTTP_INVALID_RESPONSE),
    "bare LF after chunk data": ("GET", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         b"5\r\nhello\n0\r\n\r\n"],
                                 Failure.HTTP_INVALID_RESPONSE),
    "cut mid-chunk": ("GET", [CHUNKED[:60]], Failure.EOF),
    "cut mid-chunk-size": ("GET", [CHUNKED[:50]], Failure.EOF),
    "cut before Content-Length": ("GET", [OK[:-2]], Failure.EOF),
    "cut mid-head": ("GET", [OK[:20]], Failure.EOF),
    "nothing": ("GET", [], Failure.EOF),
    "HTTP/0.9 reply": ("GET", [b"<html><body>hello</body></html>"], Failure.EOF),
    "HTTP/0.9 reply with a blank line": ("GET", [b"<html>\r\n\r\n</html>"],
                                         Failure.HTTP_INVALID_RESPONSE),
    "HTTP/1.0 until close": ("GET", segments(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 5000), None),
    "HTTP/2.0 status line": ("GET", [b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"], None),
    "bad version": ("GET", [b"HTTP/9 200 OK\r\n\r\n"], Failure.HTTP_INVALID_RESPONSE),
    "bad status": ("GET", [b"HTTP/1.1 2000 OK\r\n\r\n"], Failure.HTTP_INVALID_RESPONSE),
    "no reason phrase": ("GET", [b"HTTP/1.1 204\r\n\r\n"], None),
    "no reason phrase, space": ("GET", [b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"], None),
    "bare LF": ("GET", [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"], None),
    "blank line first": ("GET", [b"\r\n" + OK], Failure.HTTP_INVALID_RESPONSE),
    "space before colon": ("GET", [b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 0\r\n\r\n"],
                           Failure.HTTP_INVALID_RESPONSE),
    "NUL in a value": ("GET", [b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n"],
                       Failure.HTTP_INVALID_RESPONSE),
    "UTF-8 value": ("GET", ["HTTP/1.1 200 OK\r\nX-A: caf\u00e9\r\nContent-Length: 0\r\n\r\n"
                            .encode()], None),
    "Latin-1 value": ("GET", [b"HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\nContent-Length: 0\r\n\r\n"],
                      None),
    "interim then final": ("GET", [b"HTTP/1.1 100 Continue\r\n\r\n", OK], None),
    "101 unasked": ("GET", [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"],
                    Failure.HTTP_INVALID_RESPONSE),
    "HEAD with Content-Length": ("HEAD", [b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"],
                                 None),
    "304 with Content-Length": ("GET", [b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"],
                                None),
    "head just under the limit": ("GET", segments(with_header_of(MAX_HEAD)), None),
    "head a segment over the limit": ("GET", segments(with_header_of(MAX_HEAD + SEGMENT + 1)),
                                 Failure.HTTP_INVALID_RESPONSE),
    # h11 refuses only a head still incomplete with more than the limit
    # buffered: in reads of 64 KiB (httpcore's size; loopback segments can
    # be as large) a head a little over it is accepted, live and replayed.
    "head over the limit in 64 KiB reads": ("GET", segments(with_header_of(MAX_HEAD + 1000),
                                                            64 * 1024), None),
    "cut in the trailers": ("GET", [CHUNKED[:-5]], Failure.EOF),
}


@pytest.mark.parametrize(("method", "pieces", "failure"), CASES.values(), ids=CASES.keys())
def test_live_and_replay_read_a_response_alike(
    method: str, pieces: list[bytes], failure: Failure | None
) -> None:
    seen_live = live(method, pieces)
    assert seen_live.failure is failure
    assert replayed(method, pieces) == seen_live


def test_the_live_client_gets_the_replay_limit() -> None:
    """One number: the limit h11 gets in each live connection is MAX_HEAD."""
    assert httpcore.AsyncHTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE == MAX_HEAD
