"""HTTP/1.x messages from one direction of a byte stream (RFC 9112).

Sans-I/O, after h11: :class:`MessageReader` takes bytes in pieces of any
size and returns events (a head, body data, the end of a message), one
message after another on a persistent connection. It frames bodies by the
rules of RFC 9112 section 6.3 (Content-Length, chunked, or until the
connection closes) and never buffers more than one head, one chunk-size
line or one trailer section. Malformed input raises only WireError.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from probe.wire.cursor import WireError

# Heads larger than this are refused (h11's default is 16 KiB; servers in
# the wild allow 8-64 KiB).
MAX_HEAD = 64 * 1024
# A chunk-size line with extensions (RFC 9112 section 7.1.1).
_MAX_CHUNK_LINE = 1024
# RFC 9110 section 5.6.2 tchar, for bytes.translate (a C loop, not a Python one).
_TCHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Role(enum.Enum):
    REQUEST = "request"  # the client's direction
    RESPONSE = "response"  # the server's direction


Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str  # "1.1"
    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class BodyData:
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """The message's body is complete."""


Event = RequestHead | ResponseHead | BodyData | MessageEnd


def header(headers: Headers, name: str) -> str | None:
    """The first value of ``name`` (case-insensitive), or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def looks_like_request(data: bytes) -> bool:
    """Whether a stream starting with ``data`` could be HTTP/1.x requests:
    a method token then a space (RFC 9112 section 3)."""
    method, space, _ = data[:16].partition(b" ")
    return bool(space) and _token(method) and method.isupper()


def _token(data: bytes) -> bool:
    """A non-empty run of tchars (RFC 9110 section 5.6.2)."""
    return bool(data) and not data.translate(None, _TCHARS)


class _State(enum.Enum):
    HEAD = 0
    LENGTH = 1  # Content-Length body
    CHUNK_SIZE = 2
    CHUNK_DATA = 3
    CHUNK_END = 4  # the CRLF after chunk data
    TRAILERS = 5
    UNTIL_CLOSE = 6
    TUNNEL = 7  # after 101 Switching Protocols or a CONNECT: no longer HTTP


class MessageReader:
    """Messages of one direction; ``Role.RESPONSE`` readers need the
    request methods (``request_sent``) to frame responses to HEAD."""

    __slots__ = ("_buffer", "_left", "_max_head", "_methods", "_role", "_state", "offset")

    def __init__(self, role: Role, max_head: int = MAX_HEAD) -> None:
        self._role = role
        self._buffer = bytearray()
        self._state = _State.HEAD
        self._left = 0
        self._methods: deque[str] = deque()
        self._max_head = max_head
        self.offset = 0  # stream offset of the first buffered byte, for errors

    def request_sent(self, method: str) -> None:
        """Tell a response reader the method of the next request in line."""
        self._methods.append(method)

    @property
    def tunnel(self) -> bool:
        return self._state is _State.TUNNEL

    def feed(self, data: bytes) -> list[Event]:
        if self._state is _State.TUNNEL:
            return []
        self._buffer += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def eof(self) -> list[Event]:
        """The stream ended: a body read until close is now complete."""
        if self._state is _State.UNTIL_CLOSE:
            self._state = _State.HEAD
            return [MessageEnd()]
        return []

    def _consume(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self.offset += n
        return data

    def _step(self, events: list[Event]) -> bool:
        """Make progress with the buffered bytes; False when more are needed."""
        state = self._state
        buffer = self._buffer
        if state is _State.HEAD:
            return self._head(events)
        if state is _State.UNTIL_CLOSE:
            if buffer:
                events.append(BodyData(self._consume(len(buffer))))
            return False
        if state is _State.LENGTH or state is _State.CHUNK_DATA:
            if not buffer:
                return False
            data = self._consume(min(self._left, len(buffer)))
            self._left -= len(data)
            events.append(BodyData(data))
            if self._left == 0:
                if state is _State.LENGTH:
                    self._finish(events)
                else:
                    self._state = _State.CHUNK_END
            return True
        if state is _State.CHUNK_END:
            line = self._line(2)
            if line is None:
                return False
            if line:
                raise WireError(f"HTTP chunk at stream offset {self.offset}: no CRLF after data")
            self._state = _State.CHUNK_SIZE
            return True
        if state is _State.CHUNK_SIZE:
            line = self._line(_MAX_CHUNK_LINE)
            if line is None:
                return False
            size = line.split(b";", 1)[0].strip()
            if not size or any(c not in b"0123456789abcdefABCDEF" for c in size) or len(size) > 16:
                raise WireError(f"HTTP chunk size {bytes(size[:32])!r} is not hexadecimal")
            self._left = int(size, 16)
            self._state = _State.CHUNK_DATA if self._left else _State.TRAILERS
            return True
        if state is _State.TRAILERS:
            line = self._line(self._max_head)
            if line is None:
                return False
            if not line:
                self._finish(events)
            return True
        return False

    def _line(self, limit: int) -> bytes | None:
        """One line without its terminator (CRLF, or a bare LF: RFC 9112 2.2)."""
        end = self._buffer.find(b"\n", 0, limit + 1)
        if end < 0:
            if len(self._buffer) > limit:
                raise WireError(f"HTTP line at stream offset {self.offset} longer than {limit} bytes")
            return None
        line = self._consume(end + 1)[:-1]
        return line[:-1] if line.endswith(b"\r") else line

    def _head(self, events: list[Event]) -> bool:
        buffer = self._buffer
        # Leading empty lines before a message are to be ignored (RFC 9112 2.2).
        while buffer[:2] == b"\r\n" or buffer[:1] == b"\n":
            self._consume(2 if buffer[:1] == b"\r" else 1)
        end = _head_end(buffer, self._max_head)
        if end is None:
            if len(buffer) > self._max_head:
                raise WireError(
                    f"HTTP head at stream offset {self.offset} longer than {self._max_head} bytes"
                )
            return False
        where = self.offset
        lines = [
            line[:-1] if line.endswith(b"\r") else line
            for line in self._consume(end).split(b"\n")
        ]
        start, fields = lines[0], _fields(lines[1:], where)
        if self._role is Role.REQUEST:
            request = _request_line(start, where, fields)
            events.append(request)
            self._frame_request(request, events)
        else:
            response = _status_line(start, where, fields)
            events.append(response)
            self._frame_response(response, events)
        return True

    def _frame_request(self, head: RequestHead, events: list[Event]) -> None:
        if head.method == "CONNECT":
            self._state = _State.TUNNEL
            events.append(MessageEnd())
            return
        if _chunked(head.headers, where=self.offset, request=True):
            self._state = _State.CHUNK_SIZE
            return
        self._length(_content_length(head.headers, self.offset) or 0, events)

    def _frame_response(self, head: ResponseHead, events: list[Event]) -> None:
        status = head.status
        if 100 <= status < 200:
            # Interim: the final response to the same request follows,
            # except after 101, when the connection stops being HTTP.
            events.append(MessageEnd())
            if status == 101:
                self._state = _State.TUNNEL
            return
        method = self._methods.popleft() if self._methods else "GET"
        if method == "CONNECT" and 200 <= status < 300:
            events.append(MessageEnd())
            self._state = _State.TUNNEL
            return
        if method == "HEAD" or status in (204, 304):
            self._finish(events)
            return
        chunked = _chunked(head.headers, where=self.offset, request=False)
        if chunked:
            self._state = _State.CHUNK_SIZE
            return
        # A Transfer-Encoding other than chunked overrides Content-Length.
        length = None if chunked is False else _content_length(head.headers, self.offset)
        if length is None:
            self._state = _State.UNTIL_CLOSE
            return
        self._length(length, events)

    def _length(self, length: int, events: list[Event]) -> None:
        if length:
            self._left = length
            self._state = _State.LENGTH
        else:
            self._finish(events)

    def _finish(self, events: list[Event]) -> None:
        events.append(MessageEnd())
        self._state = _State.HEAD


def _head_end(buffer: bytearray, limit: int) -> int | None:
    """Length of the head including its empty line, or None if incomplete."""
    ends = [
        i + len(marker)
        for marker in (b"\r\n\r\n", b"\n\n", b"\n\r\n")
        if (i := buffer.find(marker, 0, limit + 4)) >= 0
    ]
    return min(ends) if ends else None


def _fields(lines: list[bytes], where: int) -> Headers:
    fields: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            # obs-fold (RFC 9112 section 5.2): joined to the previous value.
            if not fields:
                raise WireError(f"HTTP head at stream offset {where}: folded first header line")
            previous, text = fields[-1]
            fields[-1] = (previous, f"{text} {line.strip().decode('latin-1')}")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _token(name):
            raise WireError(
                f"HTTP head at stream offset {where}: bad header line {bytes(line[:64])!r}"
            )
        fields.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return tuple(fields)


def _version(text: bytes, where: int) -> str:
    if len(text) != 8 or not text.startswith(b"HTTP/") or text[6:7] != b".":
        raise WireError(f"HTTP message at stream offset {where}: bad version {bytes(text[:16])!r}")
    major, minor = text[5:6], text[7:8]
    if not (major.isdigit() and minor.isdigit()):
        raise WireError(f"HTTP message at stream offset {where}: bad version {bytes(text)!r}")
    return f"{major.decode()}.{minor.decode()}"


def _request_line(line: bytes, where: int, headers: Headers) -> RequestHead:
    parts = line.split(b" ")
    if len(parts) != 3 or not _token(parts[0]) or not parts[1]:
        raise WireError(f"HTTP request at stream offset {where}: bad request line {bytes(line[:64])!r}")
    return RequestHead(
        parts[0].decode("ascii"), parts[1].decode("latin-1"), _version(parts[2], where), headers
    )


def _status_line(line: bytes, where: int, headers: Headers) -> ResponseHead:
    version, _, rest = line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if len(code) != 3 or not code.isdigit():
        raise WireError(f"HTTP response at stream offset {where}: bad status line {bytes(line[:64])!r}")
    return ResponseHead(_version(version, where), int(code), reason.decode("latin-1"), headers)


def _chunked(headers: Headers, *, where: int, request: bool) -> bool | None:
    """RFC 9112 section 6.3 items 3-4: chunked must be the final coding.

    None when there is no Transfer-Encoding; False when a response has one
    that does not end in chunked (its body then runs until close).
    """
    codings = [
        c.strip().lower()
        for name, value in headers
        if name.lower() == "transfer-encoding"
        for c in value.split(",")
        if c.strip()
    ]
    if not codings:
        return None
    if codings[-1] == "chunked":
        return True
    if request:
        raise WireError(f"HTTP request at stream offset {where}: body length cannot be determined")
    return False  # a response then runs until close


def _content_length(headers: Headers, where: int) -> int | None:
    values = {
        v.strip()
        for name, value in headers
        if name.lower() == "content-length"
        for v in value.split(",")
    }
    if not values:
        return None
    if len(values) > 1 or not all(v.isdigit() and len(v) <= 18 for v in values):
        raise WireError(f"HTTP message at stream offset {where}: bad Content-Length {sorted(values)!r}")
    return int(values.pop())
