"""An SSTP responder: the first exchanges of a Microsoft SSTP server.

Debian packages no SSTP server, so the lab runs this one. It does what a
Windows RRAS server does up to the point a probe stops ([MS-SSTP] 3.2.5):
TLS with the lab leaf, then the ``SSTP_DUPLEX_POST`` request (2.2.1)
answered ``HTTP/1.1 200 OK`` with the all-ones Content-Length (2.2.2), then
an SSTP_MSG_CALL_CONNECT_REQUEST (2.2.9) answered by an
SSTP_MSG_CALL_CONNECT_ACK carrying a crypto binding request (2.2.10).
Anything else closes the connection. After the ACK it reads and discards
until the client goes (the next step would be PPP, which no probe speaks).
The messages are :mod:`probe.wire.sstp`'s, the codec the probe uses.

Run inside the server namespace::

    python -m probe_lab.servers.sstp --port 4443 --cert LEAF.pem --key LEAF.key

It listens on every address of both families and prints ``ready`` once
bound. nginx owns TCP 443 on every lab address, so the lab redirects 443
to this port for the addresses that should look like SSTP servers
(:func:`probe_lab.servers.vpn.redirect_ruleset`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import struct
import sys
from collections.abc import Sequence

from probe.wire import WireError, sstp
from probe_lab.servers.ready import announce_ready, run_until_stopped

__all__ = ["main", "respond"]

_HOLD = 120.0  # seconds a client may stay, like the hold server's

# What Windows offers for the crypto binding ([MS-SSTP] 2.2.10).
_HASH_PROTOCOLS = sstp.CERT_HASH_PROTOCOL_SHA1 | sstp.CERT_HASH_PROTOCOL_SHA256
_PPP = struct.pack("!H", sstp.ENCAPSULATED_PROTOCOL_PPP)


async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One client, after the TLS handshake."""
    try:
        async with asyncio.timeout(_HOLD):
            buffer = b""
            while (request := sstp.parse_duplex_post_request(buffer)) is None:
                buffer += await _more(reader)
            writer.write(sstp.duplex_post_response())
            buffer = buffer[request.consumed:]
            while not (packets := sstp.split_packets(buffer)[0]):
                buffer += await _more(reader)
            packet = sstp.parse_packet(packets[0])
            if packet.message_type != sstp.CALL_CONNECT_REQUEST or \
                    (sstp.ATTRIB_ENCAPSULATED_PROTOCOL_ID, _PPP) not in packet.attributes:
                return
            writer.write(sstp.call_connect_ack(os.urandom(32), hash_protocols=_HASH_PROTOCOLS))
            while await reader.read(4096):
                pass
    except (TimeoutError, ConnectionError, ssl.SSLError, WireError):
        pass
    finally:
        writer.close()


async def _more(reader: asyncio.StreamReader) -> bytes:
    chunk = await reader.read(4096)
    if not chunk:
        raise ConnectionError("the client closed")
    return chunk


async def serve(port: int, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # host=None binds the wildcard of both families (IPv6 with V6ONLY).
    await asyncio.start_server(respond, None, port, ssl=context)
    announce_ready()
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m probe_lab.servers.sstp",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    return run_until_stopped("sstp", serve(args.port, args.cert, args.key))


if __name__ == "__main__":
    sys.exit(main())
