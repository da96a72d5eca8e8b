"""One direction of a TCP connection, reassembled (RFC 9293 section 3.4).

Segments may arrive retransmitted, overlapping or out of order; the
stream hands out each byte once, in sequence order, as soon as everything
before it has arrived. Out-of-order data waits in a bounded buffer: a
hole that is never filled (a packet the capture missed) stops delivery
and is reported as a gap, rather than letting the analysers read bytes
out of place.
"""

from __future__ import annotations

_MOD = 1 << 32
_HALF = 1 << 31
# Out-of-order bytes held per direction before giving up on the hole.
MAX_PENDING = 1 << 20


def _distance(seq: int, base: int) -> int:
    """Signed distance from ``base`` to ``seq`` in sequence space (mod 2^32)."""
    return ((seq - base + _HALF) % _MOD) - _HALF


class Stream:
    __slots__ = ("fin_at", "gap", "high", "next", "pending", "pending_bytes", "start")

    def __init__(self) -> None:
        self.start: int | None = None  # sequence number of the first data byte
        self.next: int | None = None  # next byte to deliver
        self.high = 0  # bytes seen, counting from start (each byte once)
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.gap = False
        self.fin_at: int | None = None

    def syn(self, seq: int) -> None:
        """The SYN takes one sequence number; data starts after it."""
        if self.start is None:
            self.start = self.next = (seq + 1) % _MOD

    def fin(self, seq: int, length: int) -> None:
        if self.fin_at is None:
            self.fin_at = (seq + length) % _MOD

    @property
    def finished(self) -> bool:
        """Every byte up to the FIN has been delivered."""
        return self.fin_at is not None and self.next == self.fin_at

    def count(self, seq: int, length: int) -> None:
        """Track how far the sender got, without keeping the bytes."""
        if self.start is None:
            self.start = self.next = seq
        reach = _distance(seq, self.start) + length
        self.high = max(self.high, reach)

    def segment(self, seq: int, data: bytes) -> bytes:
        """The bytes that became deliverable with this segment (maybe none)."""
        self.count(seq, len(data))
        if self.gap:
            return b""
        assert self.next is not None
        offset = _distance(seq, self.next)
        if offset > 0:
            self._hold(seq, data)
            return b""
        if -offset >= len(data):
            return b""  # a retransmission of delivered bytes
        out = data[-offset:] if offset else data
        self.next = (self.next + len(out)) % _MOD
        if self.pending:
            out += self._drain()
        return out

    def _hold(self, seq: int, data: bytes) -> None:
        if len(data) <= len(self.pending.get(seq, b"")):
            return
        self.pending_bytes += len(data) - len(self.pending.get(seq, b""))
        self.pending[seq] = data
        if self.pending_bytes > MAX_PENDING:
            self.close_gap()

    def _drain(self) -> bytes:
        assert self.next is not None
        parts: list[bytes] = []
        progress = True
        while progress and self.pending:
            progress = False
            for seq in list(self.pending):
                offset = _distance(seq, self.next)
                if offset > 0:
                    continue
                data = self.pending.pop(seq)
                self.pending_bytes -= len(data)
                if -offset < len(data):
                    piece = data[-offset:]
                    parts.append(piece)
                    self.next = (self.next + len(piece)) % _MOD
                progress = True
        return b"".join(parts)

    def close_gap(self) -> None:
        """A hole will not be filled: stop delivering this direction."""
        if self.pending:
            self.gap = True
        self.pending.clear()
        self.pending_bytes = 0
