"""A bounds-checked reader over bytes, and the one error the codecs raise."""

from __future__ import annotations

from collections.abc import Callable


class WireError(ValueError):
    """Bytes that do not parse; the message says what and where (one line)."""


class Cursor:
    """Reads big-endian integers and length-prefixed vectors (RFC 8446
    section 3.4) from ``data``; running past the end raises WireError."""

    __slots__ = ("_data", "_end", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._end = len(data)
        self._what = what

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def take(self, n: int) -> bytes:
        if n > self._end - self._pos:
            raise WireError(
                f"{self._what}: needs {n} bytes at offset {self._pos}, "
                f"{self._end - self._pos} left"
            )
        start = self._pos
        self._pos += n
        return self._data[start : self._pos]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        """An opaque vector preceded by its length in ``length_size`` bytes."""
        return self.take(self.uint(length_size))

    def sub(self, length_size: int, what: str) -> Cursor:
        """A cursor over the next vector, for nested structures."""
        return Cursor(self.vector(length_size), f"{self._what}: {what}")

    def rest(self) -> bytes:
        return self.take(self._end - self._pos)

    def end(self) -> None:
        """Insist that everything was consumed (trailing bytes are an error)."""
        if self._pos != self._end:
            raise WireError(f"{self._what}: {self._end - self._pos} unexpected trailing bytes")


def split_frames(
    buffer: bytes, header_size: int, measure: Callable[[bytes, int], tuple[int, int]]
) -> tuple[tuple[bytes, ...], bytes]:
    """Whole frames from the front of a stream, and the unconsumed rest.

    ``measure(buffer, at)`` reads the header at ``at`` (``header_size``
    bytes are there) and returns (bytes to skip, frame length): the frame
    is the ``length`` bytes after the skipped ones. It raises WireError
    for a header its protocol never sends.
    """
    frames: list[bytes] = []
    at = 0
    while len(buffer) - at >= header_size:
        skip, length = measure(buffer, at)
        if len(buffer) - at - skip < length:
            break
        frames.append(bytes(buffer[at + skip : at + skip + length]))
        at += skip + length
    return tuple(frames), bytes(buffer[at:])
