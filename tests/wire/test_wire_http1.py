"""probe.wire.http1: HTTP/1.x framing from one direction of a stream."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.http1 import (
    BodyData,
    MessageEnd,
    MessageReader,
    RequestHead,
    ResponseHead,
    Role,
    header,
    looks_like_request,
)


def feed(reader: MessageReader, data: bytes, chunk: int) -> list[object]:
    events: list[object] = []
    for i in range(0, len(data), chunk):
        events += reader.feed(data[i : i + chunk])
    return events


def body_of(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyData))


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_requests_on_a_persistent_connection(chunk: int) -> None:
    stream = (b"POST /a HTTP/1.1\r\nHost: x.example\r\nContent-Length: 3\r\n\r\nabc"
              b"GET /b HTTP/1.1\r\nHost: x.example\r\n\r\n")
    events = feed(MessageReader(Role.REQUEST), stream, chunk)
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [(h.method, h.target) for h in heads] == [("POST", "/a"), ("GET", "/b")]
    assert header(heads[0].headers, "HOST") == "x.example"
    assert body_of(events) == b"abc"
    assert sum(isinstance(e, MessageEnd) for e in events) == 2


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_chunked_response_with_trailers(chunk: int) -> None:
    stream = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    events = feed(MessageReader(Role.RESPONSE), stream, chunk)
    assert isinstance(events[0], ResponseHead) and events[0].status == 200
    assert body_of(events) == b"hello world"
    assert isinstance(events[-1], MessageEnd)


def test_response_framing_rules() -> None:
    reader = MessageReader(Role.RESPONSE)
    reader.request_sent("HEAD")
    reader.request_sent("GET")
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"  # HEAD: no body
                         b"HTTP/1.1 100 Continue\r\n\r\n"  # interim
                         b"HTTP/1.0 200 OK\r\n\r\nuntil close")
    assert [type(e).__name__ for e in events] == [
        "ResponseHead", "MessageEnd", "ResponseHead", "MessageEnd", "ResponseHead", "BodyData"]
    assert reader.eof() == [MessageEnd()]
    assert body_of(events) == b"until close"


def test_switching_protocols() -> None:
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nnot http"
    with pytest.raises(WireError):  # a 101 to a request that asked for nothing
        MessageReader(Role.RESPONSE).feed(answer)
    reader = MessageReader(Role.RESPONSE)
    reader.request_sent("GET", upgrade=True)
    assert [type(e).__name__ for e in reader.feed(answer)] == ["ResponseHead", "MessageEnd"]
    assert reader.tunnel and reader.offset == len(answer) - len(b"not http")


def test_connect_request_ends_http() -> None:
    reader = MessageReader(Role.REQUEST)
    events = reader.feed(b"CONNECT x.example:443 HTTP/1.1\r\nHost: x.example:443\r\n\r\n\x16\x03\x01")
    assert [type(e).__name__ for e in events] == ["RequestHead", "MessageEnd"]
    assert reader.tunnel and reader.feed(b"more") == []


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/9 200 OK\r\n\r\n",
    # Codings other than chunked: the live client (h11) decodes none.
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef",
])
def test_malformed_responses(data: bytes) -> None:
    with pytest.raises(WireError):
        MessageReader(Role.RESPONSE).feed(data)


def test_oversized_head_is_refused() -> None:
    with pytest.raises(WireError):
        MessageReader(Role.REQUEST, max_head=100).feed(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 50)


def test_looks_like_request() -> None:
    assert looks_like_request(b"GET / HTTP/1.1\r\n")
    assert not looks_like_request(b"\x16\x03\x01\x02\x00")
    assert not looks_like_request(b"get / HTTP/1.1")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(list(Role)), st.integers(1, 50))
def test_hostile_bytes_raise_only_wire_error(data: bytes, role: Role, chunk: int) -> None:
    reader = MessageReader(role, max_head=256)
    try:
        feed(reader, data, chunk)
        reader.eof()
    except WireError:
        pass
