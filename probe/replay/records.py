"""What the replay rebuilds from a capture, flow by flow: facts, not verdicts.

The extraction (``probe.replay.engine``) emits one of these per finished
DNS exchange, TCP connection or UDP flow. They are wire facts as seen at
the capture point (who sent what, when, with which TTL); turning them into
the probe's observations, with the failure a client would have reported,
is ``probe.replay.observe``'s job. Times are seconds since the capture's
first packet.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.model import DNSResponse
from probe.wire.tls import Alert, ClientHello, ServerHello


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes as they reached one side: a datagram, or the next piece of a
    reassembled stream (kept for the VPN handshakes, probe.replay.handshake)."""

    t: float
    from_client: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class ICMPError:
    """An ICMP(v6) error quoting a packet of the flow (RFC 792, RFC 4443)."""

    t: float
    sender: str  # the router or host that sent the error
    version: int  # 4 or 6
    type: int
    code: int


@dataclass(frozen=True, slots=True)
class DNSExchange:
    """One query and every response matched to it (same ID, question and
    addresses, as dnspython's ``Message.is_response`` checks), in arrival
    order, each with the IP TTL and ID of the packet that carried it."""

    transport: str  # "udp" or "tcp"
    client: str
    client_port: int
    server: str
    server_port: int
    id: int
    name: str  # the question name, without the final dot
    rtype: str
    t0: float  # when the query was sent
    responses: tuple[DNSResponse, ...]
    # Datagrams from the server to the query's port that were not a valid
    # response to it (a stub would ignore them, and finally say so).
    ignored: int = 0
    icmp: ICMPError | None = None
    t_last: float = 0.0  # the last packet of the exchange


@dataclass(frozen=True, slots=True)
class Reset:
    t: float
    by: str  # "client" or "server" (the address it claims to come from)
    ttl: int
    ip_id: int | None
    established: bool  # sent after the three-way handshake completed


@dataclass(frozen=True, slots=True)
class AlertSeen:
    t: float
    by: str  # "client" or "server"
    # None when the alert travelled encrypted and no key could open it.
    alert: Alert | None


@dataclass(frozen=True, slots=True)
class TLSFacts:
    client_hello: ClientHello | None
    t_client_hello: float | None
    server_hello: ServerHello | None  # the real one, not a HelloRetryRequest
    t_server_hello: float | None
    hello_retry: bool
    certificates: tuple[bytes, ...]  # DER, leaf first, when visible
    alpn: str | None  # the server's choice, when visible
    alerts: tuple[AlertSeen, ...]
    # When the handshake completed from the client's side (its Finished
    # went out after the server's flight): the client accepted the server.
    t_done: float | None
    app_bytes_client: int  # application data after the handshake
    app_bytes_server: int
    decrypted: bool  # a key log opened the encrypted part of the handshake
    error: str | None  # the stream stopped parsing as TLS here


@dataclass(frozen=True, slots=True)
class HTTPExchange:
    """One HTTP/1.x request and its response (if any)."""

    t_request: float
    method: str
    target: str  # request-target as sent
    host: str | None  # Host header
    t_response: float | None
    status: int | None
    reason: str | None
    headers: tuple[tuple[str, str], ...]  # response headers, as received
    body_length: int | None  # bytes kept (at most the cap)
    body_sha256: str | None
    body_truncated: bool
    title: str | None  # raw page title (scrubbed when it becomes an observation)
    needles: tuple[tuple[str, bool | None], ...]  # body_contains checks
    complete: bool  # the response's body ended as framed
    t_end: float | None
    # When the last body byte kept (up to the cap) arrived: a timed
    # download's end (``Transfer``).
    t_body: float | None = None
    # When the response stopped parsing as HTTP/1 (probe.wire.http1 reads
    # with h11, as the live client does, which gives up there).
    t_invalid: float | None = None


@dataclass(frozen=True, slots=True)
class TCPConnection:
    client: str
    client_port: int
    server: str
    server_port: int
    t_first: float  # first packet seen
    t_syn: float | None  # the client's first SYN (None: capture began mid-connection)
    syn_count: int  # SYNs sent, retransmissions included
    t_synack: float | None
    t_established: float | None  # the client's ACK of the SYN-ACK
    t_last: float
    resets: tuple[Reset, ...]
    icmp: ICMPError | None
    t_fin_client: float | None
    t_fin_server: float | None
    server_ttls: tuple[int, ...]  # IP TTLs of the server's packets other than RSTs
    bytes_client: int  # payload bytes the client sent (each byte once)
    bytes_server: int
    t_client_data: float | None  # first payload byte from each side
    t_server_data: float | None
    tls: TLSFacts | None
    http: tuple[HTTPExchange, ...]
    # A byte range never arrived (capture loss): what follows it in that
    # direction was not analysed.
    gap: bool
    # The first bytes of a stream no other analyser reads (VPN protocols
    # over TCP), or of what TLS carried for SSTP, in arrival order.
    chunks: tuple[Chunk, ...] = ()

    @property
    def refused(self) -> bool:
        """RST (with ACK) from the server's address in answer to the SYN."""
        return any(r.by == "server" and not r.established for r in self.resets) and (
            self.t_synack is None
        )


@dataclass(frozen=True, slots=True)
class UDPFlow:
    """A UDP flow other than DNS: counts, and its first datagrams (VPN handshakes)."""

    client: str
    client_port: int
    server: str
    server_port: int
    t_first: float
    t_last: float
    packets_client: int
    packets_server: int
    bytes_client: int
    bytes_server: int
    icmp: ICMPError | None
    datagrams: tuple[Chunk, ...] = ()  # the first ones, both ways, in arrival order


Record = DNSExchange | TCPConnection | UDPFlow
