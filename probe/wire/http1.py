"""HTTP/1.x messages from one direction of a byte stream (RFC 9112), read by h11.

The live check's client (httpx over httpcore) reads responses with h11.
Replay and the lab's censor read with the same library and the same limit
(:data:`MAX_HEAD`, which ``probe.net.backend`` hands to httpcore), through
:class:`MessageReader`, so a capture replayed gives the live client's
reading of the same bytes: what it refuses, what it frames as a body and
where the body ends. Sans-I/O, after h11 itself: bytes in pieces of any
size, events out (a head, body data, the end of a message), one message
after another. Malformed input raises only WireError.
"""

from __future__ import annotations

import enum
import functools
from collections import deque
from dataclasses import dataclass

import h11

from probe.wire.cursor import WireError

# Bytes h11 buffers while a head (or a chunk-size line, or trailers) is
# incomplete before it refuses the message: its max_incomplete_event_size.
# httpcore's own default; servers in the wild allow heads of 8-64 KiB.
MAX_HEAD = 100 * 1024
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


class MalformedMessage(WireError):
    """The stream stopped being HTTP/1 (h11 refused it). ``events``: what
    the same ``feed`` read before that point (a head whose body then went
    wrong, say), so that no event is lost."""

    def __init__(self, message: str, events: list[Event]) -> None:
        super().__init__(message)
        self.events = events


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
    return bool(space) and bool(method) and not method.translate(None, _TCHARS) and method.isupper()


class MessageReader:
    """Messages of one direction; ``Role.RESPONSE`` readers need to know
    the requests (``request_sent``) to frame the responses to them.

    Each message gets an h11 connection of its own, fed what the previous
    one left over: h11 reads one request-response cycle at a time and
    would want to hear the other direction before the next message, which
    a reader of one direction never does.
    """

    __slots__ = ("_consumed", "_fed", "_limit", "_parser", "_requests", "_role", "_tunnel")

    def __init__(self, role: Role, max_head: int = MAX_HEAD) -> None:
        self._role = role
        self._limit = max_head
        self._requests: deque[tuple[str, bool]] = deque()
        self._parser: h11.Connection | None = None  # made when a message's first byte comes
        self._consumed = 0  # bytes of the messages before the current one
        self._fed = 0  # bytes fed to the current parser
        self._tunnel = False

    def request_sent(self, method: str, *, upgrade: bool = False) -> None:
        """Tell a response reader about the next request in line: its method
        (a response to HEAD has no body; a 2xx to CONNECT opens a tunnel) and
        whether it asked to switch protocols (an Upgrade header, RFC 9110
        section 7.8), without which a 101 is a protocol error."""
        self._requests.append((method, upgrade))

    @property
    def tunnel(self) -> bool:
        """The stream stopped being HTTP (after 101 Switching Protocols or a
        CONNECT): what follows is not read."""
        return self._tunnel

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet read as part of a message."""
        if self._parser is None:
            return self._consumed
        return self._consumed + self._fed - len(self._parser.trailing_data[0])

    def feed(self, data: bytes) -> list[Event]:
        """The events ``data`` completes; raises MalformedMessage."""
        events: list[Event] = []
        if self._tunnel or not data:
            return events
        if self._parser is None:
            self._parser = self._new_parser()
        self._parser.receive_data(data)
        self._fed += len(data)
        self._read(events)
        return events

    def eof(self) -> list[Event]:
        """The stream ended: a body read until close is now complete. A
        message cut short gets no MessageEnd (the live client calls that
        an EOF, not a malformed message)."""
        events: list[Event] = []
        if self._tunnel or self._parser is None:  # no message begun
            return events
        self._parser.receive_data(b"")
        try:
            self._read(events)
        except WireError:
            pass
        return events

    def _new_parser(self) -> h11.Connection:
        if self._role is Role.REQUEST:
            return h11.Connection(h11.SERVER, max_incomplete_event_size=self._limit)
        parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=self._limit)
        # h11 frames a response by the request it answers; it has to have
        # "sent" that request first. An answer to no request seen is read
        # as the answer to a GET.
        method, upgrade = self._requests.popleft() if self._requests else ("GET", False)
        parser.send(_request(method, upgrade))
        parser.send(_END)
        return parser

    def _read(self, events: list[Event]) -> None:
        """Turn what the current parser can read into events."""
        parser = self._parser
        while parser is not None:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                # Replay runs without the cyclic garbage collector, and h11's
                # error holds (in its traceback) a frame that holds it.
                exc.__traceback__ = None
                raise MalformedMessage(
                    f"HTTP {self._role.value} starting at stream offset {self._consumed}: {exc}",
                    events,
                ) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Data):
                events.append(BodyData(bytes(event.data)))
            elif isinstance(event, (h11.Response, h11.InformationalResponse)):
                events.append(ResponseHead(
                    event.http_version.decode("ascii"), event.status_code,
                    event.reason.decode("latin-1"), _headers(event.headers.raw_items()),
                ))
                # 1xx are interim (RFC 9110 section 15.2): the final
                # response to the same request follows, unless the parser
                # switched protocols (a 101, a 2xx to CONNECT).
                if parser.their_state is h11.SWITCHED_PROTOCOL:
                    events.append(MessageEnd())
                    self._enter_tunnel()
                    return
                if isinstance(event, h11.InformationalResponse):
                    events.append(MessageEnd())
            elif isinstance(event, h11.Request):
                events.append(RequestHead(
                    event.method.decode("ascii"), event.target.decode("latin-1"),
                    event.http_version.decode("ascii"), _headers(event.headers.raw_items()),
                ))
                if event.method == b"CONNECT":
                    # A tunnel follows the request (RFC 9110 section 9.3.6),
                    # whatever the server answers: no longer HTTP to read.
                    events.append(MessageEnd())
                    self._enter_tunnel()
                    return
            elif isinstance(event, h11.EndOfMessage):
                events.append(MessageEnd())  # trailers are not kept
                parser = self._next_message()
            else:  # ConnectionClosed
                return

    def _next_message(self) -> h11.Connection | None:
        """Start on what the finished message left over, if anything."""
        assert self._parser is not None
        rest, _ = self._parser.trailing_data
        self._consumed += self._fed - len(rest)
        self._parser, self._fed = None, 0
        if rest:
            self._parser = self._new_parser()
            self._parser.receive_data(rest)
            self._fed = len(rest)
        return self._parser

    def _enter_tunnel(self) -> None:
        self._consumed = self.offset
        self._parser, self._fed, self._tunnel = None, 0, True


_END = h11.EndOfMessage()


@functools.lru_cache(maxsize=64)
def _request(method: str, upgrade: bool) -> h11.Request:
    """A request that a response reader's h11 "sends" (events are immutable,
    and making one validates its headers: worth keeping)."""
    fields = [("Host", "replay.invalid")]
    if upgrade:
        fields.append(("Upgrade", "replay"))
    return h11.Request(method=method, target="/", headers=fields)


def _headers(raw: list[tuple[bytes, bytes]]) -> Headers:
    """Names as sent; values decoded as httpx decodes them (its
    ``Headers.encoding``): UTF-8 when every value is, else ISO-8859-1,
    which every byte is."""
    try:
        return tuple((name.decode("ascii"), value.decode("utf-8")) for name, value in raw)
    except UnicodeDecodeError:
        return tuple((name.decode("ascii"), value.decode("latin-1")) for name, value in raw)
