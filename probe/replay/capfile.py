"""Streaming pcap and pcapng reader: packets out, one at a time.

The file is read in large chunks and the record headers are decoded with
``struct`` straight from the chunk, so memory stays at one chunk (plus one
packet) whatever the capture's size, and the per-packet cost is a few
slices. Formats:

* pcap (the libpcap format, draft-ietf-opsawg-pcap): microsecond and
  nanosecond magics, either byte order;
* pcapng (draft-ietf-opsawg-pcapng): sections of either byte order,
  several interfaces with their own link types and timestamp resolutions,
  Enhanced, Simple and (obsolete) Packet Blocks, and Decryption Secrets
  Blocks carrying a TLS key log (which the TLS replay can use).

A file that is not a capture, or whose file header is damaged, raises
:class:`ReplayError`. Damage after the header (a truncated last packet, a
corrupt record) ends the iteration with a warning that names the byte
offset and packet number: what was read before it still counts.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from probe.replay.errors import ReplayError
from probe.wire.packets import SUPPORTED_LINKTYPES

_CHUNK = 1 << 22
# Wireshark's bound for a sane record (WTAP_MAX_PACKET_SIZE_STANDARD);
# a larger claimed length means the record header is garbage.
_MAX_PACKET = 262144
_MAX_BLOCK = 1 << 24

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BYTE_ORDER = 0x1A2B3C4D
_BLOCK_IDB = 1
_BLOCK_OPB = 2
_BLOCK_SPB = 3
_BLOCK_EPB = 6
_BLOCK_DSB = 10
_SHB_TYPE = 0x0A0D0D0A
_SECRETS_TLS_KEYLOG = 0x544C534B  # "TLSK"
_OPT_TSRESOL = 9
_OPT_TSOFFSET = 14

Packet = tuple[int, int, bytes]  # (time in ns since the epoch, link type, frame bytes)


class CaptureReader:
    """Iterate a capture's packets as ``(ns, linktype, frame)``.

    ``packets`` counts what was read, ``warnings`` holds part-way damage,
    ``secrets`` the TLS key log lines of pcapng Decryption Secrets Blocks.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.packets = 0
        self.warnings: list[str] = []
        self.secrets: list[bytes] = []
        self.format = ""

    def __iter__(self) -> Iterator[Packet]:
        try:
            stream = self.path.open("rb")
        except OSError as exc:
            raise ReplayError(f"{self.path}: {exc.strerror or exc}") from None
        with stream:
            head = stream.read(4)
            if head in _PCAP_MAGICS:
                self.format = "pcap"
                yield from self._pcap(stream, *_PCAP_MAGICS[head])
            elif head == _PCAPNG_SHB:
                self.format = "pcapng"
                yield from self._pcapng(stream, head)
            else:
                raise ReplayError(f"{self.path}: {_not_a_capture(head + stream.read(60))}")

    # -- pcap --------------------------------------------------------------

    def _pcap(self, stream: BinaryIO, endian: str, frac_ns: int) -> Iterator[Packet]:
        header = stream.read(20)
        if len(header) < 20:
            raise ReplayError(f"{self.path}: truncated pcap file header (byte {4 + len(header)})")
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack(endian + "HHiIII", header)
        if major != 2:
            raise ReplayError(f"{self.path}: pcap version {major} at byte 4 (expected 2)")
        # The upper bits may carry FCS information (pcap draft section 4).
        linktype = network & 0x0FFFFFFF
        self._check_linktype(linktype, "byte 20")
        limit = max(snaplen, _MAX_PACKET)
        unpack = struct.Struct(endian + "IIII").unpack_from
        buf = b""
        pos = 0
        base = 24  # file offset of buf[0]
        count = 0
        try:
            while True:
                if len(buf) - pos < 16:
                    more = stream.read(_CHUNK)
                    if not more:
                        if len(buf) > pos:
                            self._warn(base + pos, count + 1, "truncated record header")
                        return
                    buf, base, pos = buf[pos:] + more, base + pos, 0
                    continue
                sec, frac, incl, _orig = unpack(buf, pos)
                if incl > limit:
                    self._warn(base + pos, count + 1,
                               f"record claims {incl} bytes (snaplen {snaplen}): corrupt header")
                    return
                end = pos + 16 + incl
                if end > len(buf):
                    more = stream.read(max(_CHUNK, incl + 16))
                    if not more:
                        self._warn(base + pos, count + 1,
                                   f"truncated packet ({len(buf) - pos - 16} of {incl} bytes)")
                        return
                    buf, base, pos = buf[pos:] + more, base + pos, 0
                    continue
                count += 1
                yield sec * 1_000_000_000 + frac * frac_ns, linktype, buf[pos + 16 : end]
                pos = end
        finally:
            self.packets = count

    # -- pcapng ------------------------------------------------------------

    def _pcapng(self, stream: BinaryIO, head: bytes) -> Iterator[Packet]:
        blocks = _Blocks(stream, head, self.path)
        # Per interface: link type, snaplen, and ns = ticks * mul // div + offset.
        interfaces: list[tuple[int, int, int, int, int]] = []
        count = 0
        last_ns = 0
        try:
            for offset, kind, body, endian in blocks:
                if kind == _SHB_TYPE:
                    interfaces = []  # each section numbers its interfaces anew
                    continue
                if kind == _BLOCK_EPB or kind == _BLOCK_OPB:
                    if kind == _BLOCK_EPB:
                        if len(body) < 20:
                            self._warn(offset, count + 1, "Enhanced Packet Block too short")
                            return
                        iface, high, low, caplen, _orig = struct.unpack_from(endian + "IIIII", body)
                        data_at = 20
                    else:
                        if len(body) < 20:
                            self._warn(offset, count + 1, "Packet Block too short")
                            return
                        iface, _drops, high, low, caplen, _orig = struct.unpack_from(
                            endian + "HHIIII", body
                        )
                        data_at = 20
                    if iface >= len(interfaces):
                        self._warn(offset, count + 1, f"packet on undeclared interface {iface}")
                        return
                    if caplen > len(body) - data_at:
                        self._warn(offset, count + 1, f"packet claims {caplen} bytes past its block")
                        return
                    linktype, _snap, mul, div, shift = interfaces[iface]
                    last_ns = ((high << 32) | low) * mul // div + shift
                    count += 1
                    yield last_ns, linktype, body[data_at : data_at + caplen]
                elif kind == _BLOCK_SPB:
                    if not interfaces or len(body) < 4:
                        self._warn(offset, count + 1, "Simple Packet Block without interface 0")
                        return
                    linktype, snaplen = interfaces[0][:2]
                    (orig,) = struct.unpack_from(endian + "I", body)
                    caplen = min(orig, len(body) - 4, snaplen or orig)
                    count += 1
                    # No timestamp in this block type: it inherits the last one.
                    yield last_ns, linktype, body[4 : 4 + caplen]
                elif kind == _BLOCK_IDB:
                    interfaces.append(self._interface(body, endian, offset))
                elif kind == _BLOCK_DSB:
                    self._secrets(body, endian)
        except _Damaged as damage:
            self._warn(damage.offset, count + 1, str(damage))
        finally:
            self.packets = count

    def _interface(self, body: bytes, endian: str, offset: int) -> tuple[int, int, int, int, int]:
        if len(body) < 8:
            raise _Damaged(offset, "Interface Description Block too short")
        linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body)
        self._check_linktype(linktype, f"interface block at byte {offset}")
        mul, div = 1000, 1  # default resolution: microseconds
        offset_s = 0
        for code, value in _options(body, 8, endian):
            if code == _OPT_TSRESOL and len(value) >= 1:
                exponent = value[0] & 0x7F
                if value[0] & 0x80:  # a power of two
                    mul, div = 1_000_000_000, 1 << exponent
                elif exponent <= 9:
                    mul, div = 10 ** (9 - exponent), 1
                else:
                    mul, div = 1, 10 ** (exponent - 9)
            elif code == _OPT_TSOFFSET and len(value) >= 8:
                (offset_s,) = struct.unpack_from(endian + "q", value)
        return linktype, snaplen, mul, div, offset_s * 1_000_000_000

    def _secrets(self, body: bytes, endian: str) -> None:
        if len(body) < 8:
            return
        kind, length = struct.unpack_from(endian + "II", body)
        if kind == _SECRETS_TLS_KEYLOG:
            self.secrets.extend(body[8 : 8 + length].splitlines())

    def _check_linktype(self, linktype: int, where: str) -> None:
        if linktype not in SUPPORTED_LINKTYPES:
            raise ReplayError(
                f"{self.path}: unsupported link type {linktype} ({where}); replay reads "
                "Ethernet, Linux cooked (SLL, SLL2), raw IPv4/IPv6 and BSD loopback"
            )

    def _warn(self, offset: int, number: int, what: str) -> None:
        self.warnings.append(
            f"{self.path}: packet {number} at byte {offset}: {what}; "
            f"the capture is damaged from there, {number - 1} packets were read"
        )


class _Damaged(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset


class _Blocks:
    """pcapng blocks as ``(file offset, type, body, byte order)``."""

    def __init__(self, stream: BinaryIO, head: bytes, path: Path) -> None:
        self._stream = stream
        self._path = path
        self._first = head

    def __iter__(self) -> Iterator[tuple[int, int, bytes, str]]:
        stream = self._stream
        offset = 0
        endian = "<"
        pending = self._first
        while True:
            header = pending + stream.read(8 - len(pending))
            pending = b""
            if not header:
                return
            if len(header) < 8:
                raise _Damaged(offset, "truncated block header")
            if header[:4] == _PCAPNG_SHB:
                magic = stream.read(4)
                if len(magic) < 4:
                    raise self._damage(offset, "truncated Section Header Block")
                if struct.unpack("<I", magic)[0] == _PCAPNG_BYTE_ORDER:
                    endian = "<"
                elif struct.unpack(">I", magic)[0] == _PCAPNG_BYTE_ORDER:
                    endian = ">"
                else:
                    raise self._damage(offset, "bad byte-order magic in Section Header Block")
                (total,) = struct.unpack_from(endian + "I", header, 4)
                self._check_length(offset, total, 12 + 4)
                body = magic + self._read(offset, total - 12 - 4)
            else:
                kind, total = struct.unpack(endian + "II", header)
                self._check_length(offset, total, 12)
                body = self._read(offset, total - 12)
            trailer = self._read(offset, 4)
            if struct.unpack(endian + "I", trailer)[0] != total:
                raise self._damage(offset, "block length and trailing length differ")
            kind = _SHB_TYPE if header[:4] == _PCAPNG_SHB else struct.unpack(endian + "I", header[:4])[0]
            if kind == _SHB_TYPE:
                major = struct.unpack_from(endian + "H", body, 4)[0] if len(body) >= 6 else 0
                if major != 1:
                    raise self._damage(offset, f"pcapng version {major} (expected 1)")
            yield offset, kind, body, endian
            offset += total

    def _damage(self, offset: int, message: str) -> Exception:
        """Damage in the very first block means the file header is bad."""
        if offset == 0:
            return ReplayError(f"{self._path}: {message} (byte {offset})")
        return _Damaged(offset, message)

    def _check_length(self, offset: int, total: int, minimum: int) -> None:
        if total < minimum or total % 4 or total > _MAX_BLOCK:
            raise self._damage(offset, f"block length {total} is invalid")

    def _read(self, offset: int, n: int) -> bytes:
        data = self._stream.read(n)
        if len(data) < n:
            raise self._damage(offset, "truncated block")
        return data


def _options(body: bytes, start: int, endian: str) -> Iterator[tuple[int, bytes]]:
    """pcapng options (section 3.5): code, length, value padded to 4 bytes."""
    pos = start
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        if code == 0:  # opt_endofopt
            return
        yield code, body[pos + 4 : pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)


def _not_a_capture(head: bytes) -> str:
    if not head:
        return "empty file, not a capture"
    if head[:2] == b"\x1f\x8b":
        return "gzip-compressed; decompress it first (gunzip)"
    if all(32 <= c < 127 or c in b"\t\r\n" for c in head):
        text = head[:24].decode("ascii").splitlines()[0] if head.strip() else ""
        return f"a text file ({text!r}...), not a pcap or pcapng capture"
    return f"not a pcap or pcapng capture (first bytes {head[:4].hex()} at byte 0)"
