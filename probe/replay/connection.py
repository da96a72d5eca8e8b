"""One TCP connection followed through a capture.

Tracks the three-way handshake (RFC 9293 section 3.5), resets (who sent
them, with what TTL), FINs, and the two reassembled byte streams, which go
to an application analyser (TLS, HTTP or DNS over TCP) chosen from the
client's first bytes. When the connection ends it becomes a frozen
:class:`~probe.replay.records.TCPConnection`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from probe.replay.records import (
    Chunk,
    HTTPExchange,
    ICMPError,
    Reset,
    TCPConnection,
    TLSFacts,
)
from probe.replay.stream import Stream
from probe.wire.packets import ACK, FIN, RST, SYN

_MAX_RESETS = 8
_MAX_TTLS = 8
# Bytes a server may send before the client speaks that are kept for the
# analyser (a banner); more means the connection is not one we read.
_MAX_EARLY = 1 << 16


class Analyzer(Protocol):
    @property
    def wants_data(self) -> bool: ...

    def data(self, from_client: bool, t: float, data: bytes, ttl: int, ip_id: int | None) -> None: ...

    def eof(self, from_client: bool, t: float) -> None: ...

    def outcome(self) -> tuple[TLSFacts | None, tuple[HTTPExchange, ...], tuple[Chunk, ...]]: ...


# Chooses an analyser from the client's first bytes (None: not interesting).
Chooser = Callable[["Connection", bytes], Analyzer | None]


class Connection:
    __slots__ = (
        "_choose",
        "_early",
        "_eof",
        "aborted",
        "analyzer",
        "client",
        "client_port",
        "closed",
        "decided",
        "feeding",
        "icmp",
        "key",
        "resets",
        "server",
        "server_port",
        "server_ttls",
        "syns",
        "t_client_data",
        "t_established",
        "t_fin_client",
        "t_fin_server",
        "t_first",
        "t_last",
        "t_server_data",
        "t_syn",
        "t_synack",
        "to_client",
        "to_server",
    )

    def __init__(
        self, key: tuple[bytes, int, bytes, int], client: str, server: str, t: float,
        choose: Chooser,
    ) -> None:
        self.key = key  # (client address, client port, server address, server port)
        self.client = client
        self.client_port = key[1]
        self.server = server
        self.server_port = key[3]
        self.t_first = t
        self.t_syn: float | None = None
        self.syns = 0
        self.t_synack: float | None = None
        self.t_established: float | None = None
        self.t_last = t
        self.resets: list[Reset] = []
        self.icmp: ICMPError | None = None
        self.t_fin_client: float | None = None
        self.t_fin_server: float | None = None
        self.server_ttls: list[int] = []
        self.t_client_data: float | None = None
        self.t_server_data: float | None = None
        self.closed: float | None = None  # when it was reset, or both sides FINed
        # The client reset the connection: nothing that arrives later reaches it.
        self.aborted = False
        self.to_server = Stream()
        self.to_client = Stream()
        self.analyzer: Analyzer | None = None
        self.decided = False
        self.feeding = True  # the analyser still wants bytes
        self._early: list[tuple[float, bytes, int, int | None]] = []
        self._eof = [False, False]
        self._choose = choose

    def packet(
        self, t: float, from_client: bool, ttl: int, ip_id: int | None, flags: int,
        seq: int, payload: bytes,
    ) -> None:
        self.t_last = t
        if flags & RST:
            if len(self.resets) < _MAX_RESETS:
                self.resets.append(Reset(
                    round(t, 6), "client" if from_client else "server", ttl, ip_id,
                    self.t_established is not None,
                ))
            if self.closed is None:
                self.closed = t
            self.aborted |= from_client
            return
        stream = self.to_server if from_client else self.to_client
        if flags & SYN:
            stream.syn(seq)
            seq = (seq + 1) & 0xFFFFFFFF  # data on a SYN (TFO) follows it
            if from_client:
                self.syns += 1
                if self.t_syn is None:
                    self.t_syn = t
            elif self.t_synack is None and flags & ACK:
                self.t_synack = t
        elif from_client and flags & ACK and self.t_synack is not None and self.t_established is None:
            self.t_established = t
        if not from_client and len(self.server_ttls) < _MAX_TTLS and ttl not in self.server_ttls:
            self.server_ttls.append(ttl)
        if payload:
            self._payload(t, from_client, ttl, ip_id, seq, payload, stream)
        if flags & FIN:
            stream.fin(seq, len(payload))
            if from_client and self.t_fin_client is None:
                self.t_fin_client = t
            elif not from_client and self.t_fin_server is None:
                self.t_fin_server = t
            if self.t_fin_client is not None and self.t_fin_server is not None:
                self.closed = t
        if stream.finished and not self._eof[from_client] and self.analyzer is not None:
            self._eof[from_client] = True
            self.analyzer.eof(from_client, t)

    def _payload(
        self, t: float, from_client: bool, ttl: int, ip_id: int | None, seq: int,
        payload: bytes, stream: Stream,
    ) -> None:
        if from_client and self.t_client_data is None:
            self.t_client_data = t
        elif not from_client and self.t_server_data is None:
            self.t_server_data = t
        if not self.feeding or (self.aborted and not from_client):
            stream.count(seq, len(payload))
            return
        data = stream.segment(seq, payload)
        if not data:
            return
        if not self.decided:
            if not from_client:
                # The server spoke first: hold its bytes until the client's
                # first bytes say what the connection carries.
                if sum(map(len, self._early)) + len(data) > _MAX_EARLY:
                    self.feeding = False
                else:
                    self._early.append((t, data, ttl, ip_id))
                return
            # The first bytes in sequence order, whatever order they came in.
            self.decided = True
            self.analyzer = self._choose(self, data)
            if self.analyzer is None:
                self.feeding = False
                return
            for early in self._early:
                self.analyzer.data(False, *early)
            self._early = []
        assert self.analyzer is not None
        self.analyzer.data(from_client, t, data, ttl, ip_id)
        if not self.analyzer.wants_data:
            self.feeding = False

    def record(self) -> TCPConnection:
        """The finished connection's facts."""
        tls, http, chunks = self.analyzer.outcome() if self.analyzer is not None else (None, (), ())
        return TCPConnection(
            client=self.client,
            client_port=self.client_port,
            server=self.server,
            server_port=self.server_port,
            t_first=round(self.t_first, 6),
            t_syn=_r(self.t_syn),
            syn_count=self.syns,
            t_synack=_r(self.t_synack),
            t_established=_r(self.t_established),
            t_last=round(self.t_last, 6),
            resets=tuple(self.resets),
            icmp=self.icmp,
            t_fin_client=_r(self.t_fin_client),
            t_fin_server=_r(self.t_fin_server),
            server_ttls=tuple(self.server_ttls),
            bytes_client=self.to_server.high,
            bytes_server=self.to_client.high,
            t_client_data=_r(self.t_client_data),
            t_server_data=_r(self.t_server_data),
            tls=tls,
            http=http,
            gap=self.to_server.gap or self.to_client.gap
            or bool(self.to_server.pending) or bool(self.to_client.pending),
            chunks=chunks,
        )


def _r(t: float | None) -> float | None:
    return None if t is None else round(t, 6)
