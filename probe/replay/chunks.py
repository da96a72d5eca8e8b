"""The first bytes of a flow, kept as they arrived, for reading later.

A VPN handshake is read only once its target is known (which protocol,
which key: ``probe.replay.handshake``), long after the extraction has
moved on. So the streams no analyser understands (OpenVPN over TCP, PPTP,
and SSTP inside TLS) and the datagrams of UDP flows keep their first
bytes, with their times, up to a budget: a first exchange is a few
hundred bytes, and the budget bounds what a bulk flow can hold.
"""

from __future__ import annotations

from probe.replay.records import Chunk, HTTPExchange

# Bytes kept per flow: room for a handshake and its resends (an IKE_SA_INIT
# response is the largest, under 1 KB), little for a flow that is not one.
BUDGET = 1 << 15


class ChunkLog:
    """Both directions of a stream (or a flow's datagrams), as they came."""

    __slots__ = ("_chunks", "_left")

    def __init__(self, budget: int = BUDGET) -> None:
        self._chunks: list[Chunk] = []
        self._left = budget

    @property
    def wants_data(self) -> bool:
        return self._left > 0

    def add(self, t: float, from_client: bool, data: bytes) -> None:
        """Keep ``data`` (a datagram, even an empty one, or the next bytes of
        one side) while the budget lasts."""
        if self._left <= 0:
            return
        kept = data[: self._left]
        self._left -= len(kept)
        self._chunks.append(Chunk(round(t, 6), from_client, kept))

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(self._chunks)

    # -- as a connection's analyser (probe.replay.connection.Analyzer) --------

    def data(self, from_client: bool, t: float, data: bytes, ttl: int, ip_id: int | None) -> None:
        if data:
            self.add(t, from_client, data)

    def eof(self, from_client: bool, t: float) -> None:
        pass  # the connection records its FINs itself

    def outcome(self) -> tuple[None, tuple[HTTPExchange, ...], tuple[Chunk, ...]]:
        return None, (), self.chunks

    # -- as what TLS carries (probe.replay.tls.Inner) ---------------------------

    def client_data(self, t: float, data: bytes) -> None:
        self.data(True, t, data, 0, None)

    def server_data(self, t: float, data: bytes) -> None:
        self.data(False, t, data, 0, None)

    def server_eof(self, t: float) -> None:
        pass
