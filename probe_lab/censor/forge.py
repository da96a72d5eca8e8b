"""What the censor sends of its own: forged DNS answers, TCP resets, a block page.

Sans-I/O: each function returns finished IP packets (bytes) that the
daemon writes to a raw socket. The forged packets carry the address of
the party they impersonate, like an on-path injector's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from probe.wire.packets import ACK, FIN, PSH, RST, TCPSegment, build_tcp, build_udp
from probe_lab.censor.config import BLOCKPAGE_TITLE

__all__ = ["BLOCKPAGE", "dns_answer", "http_blockpage", "tcp_resets"]

# RFC 9110 section 15.5.4. "Connection: close" and the FIN that carries it
# tell the client nothing more is coming.
_BLOCKPAGE_BODY = (
    f"<html><head><title>{BLOCKPAGE_TITLE}</title></head>"
    f"<body><h1>{BLOCKPAGE_TITLE}</h1></body></html>\n"
).encode()
BLOCKPAGE = (
    b"HTTP/1.1 403 Forbidden\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Length: " + str(len(_BLOCKPAGE_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n\r\n" + _BLOCKPAGE_BODY
)
_WINDOW = 65535


def dns_answer(
    query: dns.message.Message,
    addresses: Sequence[str],
    ttl: int,
    *,
    client: tuple[str, int],
    resolver: tuple[str, int],
) -> bytes | None:
    """A forged response to ``query`` with ``addresses`` of the asked family.

    None when the entry has no address of that family (an A query is not
    answered with an IPv6 address, nor an AAAA query with an IPv4 one).
    """
    question = query.question[0]
    version = 4 if question.rdtype == dns.rdatatype.A else 6
    usable = [a for a in addresses if ipaddress.ip_address(a).version == version]
    if not usable:
        return None
    response = dns.message.make_response(query, recursion_available=True)
    rrset = dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN, question.rdtype, usable)
    response.answer.append(rrset)
    return build_udp(resolver[0], client[0], resolver[1], client[1], response.to_wire())


def tcp_resets(
    client: tuple[str, int], server: tuple[str, int], withheld: tuple[int, int], server_seq: int
) -> list[bytes]:
    """RST|ACK to both ends, like the GFW's.

    ``withheld`` is the client's sequence range the censor kept from the
    server (first byte, end); ``server_seq`` the server's next sequence
    number (what the client acknowledges). RFC 5961 section 3.2: a reset is
    taken at once only when its sequence number is exactly the receiver's
    next expected one, which these are.
    """
    first, end = withheld
    to_client = TCPSegment(server[1], client[1], server_seq, end, RST | ACK)
    to_server = TCPSegment(client[1], server[1], first, server_seq, RST | ACK)
    return [
        build_tcp(server[0], client[0], to_client),
        build_tcp(client[0], server[0], to_server),
    ]


def http_blockpage(
    client: tuple[str, int], server: tuple[str, int], withheld: tuple[int, int], server_seq: int
) -> list[bytes]:
    """The block page (then FIN) to the client in the server's name; a reset to the server.

    The page acknowledges the whole withheld request, so the client reads
    it as the answer to what it sent.
    """
    first, end = withheld
    page = TCPSegment(
        server[1], client[1], server_seq, end, PSH | ACK | FIN, _WINDOW, b"", BLOCKPAGE
    )
    to_server = TCPSegment(client[1], server[1], first, server_seq, RST | ACK)
    return [build_tcp(server[0], client[0], page), build_tcp(client[0], server[0], to_server)]
