"""HTTP/1.x exchanges rebuilt from the two byte streams of a connection.

Requests and responses are paired in order (RFC 9112 section 9.3: on a
persistent connection responses come in the order of the requests). The
body of each response is kept up to ``body_cap`` bytes, as the live check
reads it, so length, hash, title and ``body_contains`` come out the same.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

from probe.httpbody import content_charset, find_in_body, page_title
from probe.replay.records import HTTPExchange
from probe.wire.http1 import (
    BodyData,
    Event,
    MalformedMessage,
    MessageReader,
    RequestHead,
    ResponseHead,
    Role,
    header,
)


@dataclass(slots=True)
class _Pending:
    t_request: float
    request: RequestHead
    t_response: float | None = None
    response: ResponseHead | None = None
    body: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    complete: bool = False
    t_end: float | None = None
    t_body: float | None = None  # the last body byte kept arrived
    t_invalid: float | None = None  # the response stopped parsing as HTTP


class HTTPTracker:
    """Feed it the client's and the server's bytes in capture order."""

    __slots__ = (
        "_cap",
        "_done",
        "_interim",
        "_needles",
        "_pending",
        "_requests",
        "_responses",
        "_server",
        "error",
    )

    def __init__(self, server: str, body_cap: int, needles: tuple[str, ...]) -> None:
        self._requests = MessageReader(Role.REQUEST)
        self._responses = MessageReader(Role.RESPONSE)
        self._pending: deque[_Pending] = deque()
        self._done: list[HTTPExchange] = []
        self._cap = body_cap
        self._needles = needles
        self._server = server
        self._interim = False
        self.error: str | None = None

    @property
    def wants_data(self) -> bool:
        return self.error is None and not self._responses.tunnel

    def data(self, from_client: bool, t: float, data: bytes, ttl: int, ip_id: int | None) -> None:
        """The analyzer interface of ``probe.replay.engine`` (plain HTTP)."""
        if from_client:
            self.client_data(t, data)
        else:
            self.server_data(t, data)

    def eof(self, from_client: bool, t: float) -> None:
        if not from_client:
            self.server_eof(t)

    def client_data(self, t: float, data: bytes) -> None:
        try:
            events = self._requests.feed(data)
        except MalformedMessage as exc:
            self.error = f"client: {exc}"
            events = exc.events
        for event in events:
            if isinstance(event, RequestHead):
                self._pending.append(_Pending(t, event))
                # A 101 answers only a request that asked to switch (h11).
                self._responses.request_sent(
                    event.method, upgrade=bool(header(event.headers, "upgrade"))
                )

    def server_data(self, t: float, data: bytes) -> None:
        try:
            events = self._responses.feed(data)
        except MalformedMessage as exc:
            self.error = f"server: {exc}"
            self._server_events(t, exc.events)
            if self._pending:  # the answer to the oldest request was malformed
                self._pending[0].t_invalid = t
            return
        self._server_events(t, events)

    def server_eof(self, t: float) -> None:
        if self.error is None:
            self._server_events(t, self._responses.eof())

    def _server_events(self, t: float, events: list[Event]) -> None:
        for event in events:
            head = self._pending[0] if self._pending else None
            if isinstance(event, ResponseHead):
                # Interim responses (RFC 9110 section 15.2) precede the real one.
                self._interim = 100 <= event.status < 200 and event.status != 101
                if head is not None and not self._interim:
                    head.t_response, head.response = t, event
            elif self._interim or head is None or head.response is None:
                continue  # unsolicited, or part of an interim response
            elif isinstance(event, BodyData):
                room = self._cap - len(head.body)
                if room > 0 and event.data:
                    head.t_body = t
                head.body += event.data[:room]
                head.truncated |= len(event.data) > room
            else:
                head.complete, head.t_end = True, t
                self._done.append(self._exchange(self._pending.popleft()))

    def outcome(self) -> tuple[None, tuple[HTTPExchange, ...], tuple[()]]:
        return None, self.exchanges(), ()

    def exchanges(self) -> tuple[HTTPExchange, ...]:
        """Every exchange, finished ones first, then those cut short."""
        return tuple(self._done) + tuple(self._exchange(p) for p in self._pending)

    def _exchange(self, p: _Pending) -> HTTPExchange:
        response = p.response
        body = bytes(p.body)
        received = response is not None
        return HTTPExchange(
            t_request=p.t_request,
            method=p.request.method,
            target=p.request.target,
            host=header(p.request.headers, "host"),
            t_response=p.t_response,
            status=response.status if response else None,
            reason=response.reason if response else None,
            headers=response.headers if response else (),
            body_length=len(body) if received else None,
            body_sha256=hashlib.sha256(body).hexdigest() if received else None,
            body_truncated=p.truncated,
            title=(page_title(body, content_charset(response.headers), {self._server})
                   if response else None),
            needles=tuple(
                (needle, find_in_body(body, needle, p.truncated) if received else None)
                for needle in self._needles
            ),
            complete=p.complete,
            t_end=p.t_end,
            t_body=p.t_body,
            t_invalid=p.t_invalid,
        )
