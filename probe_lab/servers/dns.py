"""The lab's resolver: answers the lab zone over UDP and TCP, after a short delay.

Run inside the server namespace::

    python -m probe_lab.servers.dns --zone ZONE.json [--listen ADDR ...] [--port 53]

It plays "the resolver the client was given": recursion available, every
lab name answered from the zone (see :mod:`probe_lab.zone`), any other
name NXDOMAIN. Every real answer waits ``zone.delay`` seconds, so a
forged answer injected on the path reaches the client first while the
real one still arrives (the race the probe must record). It prints
``ready`` on stdout once every socket is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from probe_lab.addressing import RESOLVER_V4, RESOLVER_V6
from probe_lab.servers.ready import announce_ready, run_until_stopped
from probe_lab.zone import Answer, Zone

__all__ = ["answer", "main"]

_TTL = 300
_TCP_IDLE = 10.0  # seconds a TCP client may stay silent (RFC 7766 section 6.2.3)


def answer(zone: Zone, wire: bytes) -> bytes | None:
    """The response to one query, or None when nothing is sent (drop, or not a query)."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    if query.flags & dns.flags.QR or len(query.question) != 1:
        return None
    question = query.question[0]
    response = dns.message.make_response(query)
    # The resolver the client was configured with: recursive, and
    # authoritative for nothing (RFC 1035 section 4.1.1 RA, AA).
    response.flags |= dns.flags.RA
    entry = zone.lookup(question.name.to_text(omit_final_dot=True))
    if entry is None or entry.answer is Answer.NXDOMAIN:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif entry.answer is Answer.SERVFAIL:
        response.set_rcode(dns.rcode.SERVFAIL)
    elif entry.answer is Answer.DROP:
        return None
    elif entry.answer is Answer.ADDRESSES and question.rdclass == dns.rdataclass.IN:
        rtype = dns.rdatatype.to_text(question.rdtype)
        records = entry.records(rtype)
        if records:
            response.answer.append(
                dns.rrset.from_text_list(question.name, _TTL, "IN", rtype, list(records))
            )
    return response.to_wire()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(self.zone, data)
        if reply is not None and self.transport is not None:
            asyncio.get_running_loop().call_later(self.zone.delay, self.transport.sendto, reply, addr)


async def _tcp(zone: Zone, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # RFC 1035 section 4.2.2: each message is preceded by its two-byte length.
    try:
        while True:
            length = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE))[0]
            reply = answer(zone, await asyncio.wait_for(reader.readexactly(length), _TCP_IDLE))
            if reply is None:
                continue
            await asyncio.sleep(zone.delay)
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(zone: Zone, addresses: Sequence[str], port: int) -> None:
    loop = asyncio.get_running_loop()
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        await loop.create_datagram_endpoint(lambda: _UDP(zone), local_addr=(address, port),
                                            family=family)
        await asyncio.start_server(lambda r, w: _tcp(zone, r, w), address, port, family=family)
    announce_ready()
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m probe_lab.servers.dns", description=__doc__.split("\n")[0])
    parser.add_argument("--zone", type=Path, required=True, help="zone JSON written by the lab")
    parser.add_argument("--listen", action="append", metavar="ADDR",
                        help=f"address to serve on (default {RESOLVER_V4} and {RESOLVER_V6})")
    parser.add_argument("--port", type=int, default=53)
    args = parser.parse_args(argv)
    try:
        zone = Zone.from_json(args.zone.read_text())
    except (OSError, ValueError) as exc:
        print(f"{args.zone}: {exc}", file=sys.stderr)
        return 2
    return run_until_stopped("dns", serve(zone, args.listen or [RESOLVER_V4, RESOLVER_V6], args.port))


if __name__ == "__main__":
    sys.exit(main())
