"""Loopback servers for the live-check tests: DNS, TCP, TLS, HTTP(S), DoH.

Everything listens on 127.0.0.0/8 only (most on 127.0.0.2, so that the
client's own address, 127.0.0.1, differs from the server's and the
scrubbing of "our" address can be tested). All servers share one
asyncio loop in a background thread, so each test can drive its own
client loop with asyncio.run.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVER = "127.0.0.2"  # where the servers listen
FORGED = "198.51.100.1"  # the "injector's" answer: data only, never dialled
BOGON = "10.0.0.1"  # data only, never dialled
PAGE_TITLE = "Hello from 127.0.0.2, you are 127.0.0.1 (via 10.1.2.3)"

# --------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Certs:
    ca: Path  # PEM of the test CA: the --ca-bundle of the tests
    good: tuple[Path, Path]  # (cert, key) for good.test, other.test, 127.0.0.2
    wrong: tuple[Path, Path]  # CA-signed, for wrong.example only
    expired: tuple[Path, Path]  # CA-signed good.test, expired
    self_signed: tuple[Path, Path]  # good.test, signed by itself
    good_der: bytes  # the good leaf, to compare fingerprints


def make_certs(directory: Path) -> Certs:
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Probe Test CA")
    ca = _build(ca_name, ca_name, ca_key.public_key(), now - day, now + day, ca=True)
    ca_cert = ca.sign(ca_key, hashes.SHA256())

    def leaf(names: list[str], start: datetime.datetime, end: datetime.datetime,
             self_signed: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(names[0])
        builder = _build(subject, subject if self_signed else ca_name, key.public_key(),
                         start, end, ca=False, names=names)
        return builder.sign(key if self_signed else ca_key, hashes.SHA256()), key

    def save(stem: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
             ) -> tuple[Path, Path]:
        cert, key = pair
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return cert_path, key_path

    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    good = leaf(["good.test", "other.test", SERVER], now - day, now + day)
    return Certs(
        ca=directory / "ca.crt",
        good=save("good", good),
        wrong=save("wrong", leaf(["wrong.example"], now - day, now + day)),
        expired=save("expired", leaf(["good.test"], now - 3 * day, now - 2 * day)),
        self_signed=save("self", leaf(["good.test"], now - day, now + day, self_signed=True)),
        good_der=good[0].public_bytes(serialization.Encoding.DER),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _build(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
           start: datetime.datetime, end: datetime.datetime, *, ca: bool,
           names: Sequence[str] = ()) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        return builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    general: list[x509.GeneralName] = []
    for name in names:
        if name[0].isdigit():
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        else:
            general.append(x509.DNSName(name))
    return builder.add_extension(x509.SubjectAlternativeName(general), critical=False)


def server_context(pair: tuple[Path, Path], alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pair)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


# --------------------------------------------------------------------------
# DNS: the zone is a function of the query name.


_LOSSY_SEEN: set[int] = set()  # query ids of lossy.test seen once


def dns_replies(wire: bytes) -> list[tuple[float, bytes]]:
    """(delay in seconds, datagram) to send back for one query."""
    query = dns.message.from_wire(wire)
    question = query.question[0]
    name = question.name.to_text().lower()
    rdtype = question.rdtype

    def reply(rcode: int = dns.rcode.NOERROR, *records: tuple[str, str, str]) -> bytes:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        for owner, kind, data in records:
            response.answer.append(dns.rrset.from_text(owner, 300, "IN", kind, data))
        return response.to_wire()

    a = rdtype == dns.rdatatype.A
    aaaa = rdtype == dns.rdatatype.AAAA
    if name == "ok.test.":
        return [(0, reply(dns.rcode.NOERROR, *([(name, "A", SERVER)] if a else [])))]
    if name in ("other.test.", "good.test."):
        return [(0, reply(dns.rcode.NOERROR, *([(name, "A", SERVER)] if a else [])))]
    if name == "dual.test.":
        records = [(name, "A", SERVER)] if a else [(name, "AAAA", "::1")] if aaaa else []
        return [(0, reply(dns.rcode.NOERROR, *records))]
    if name == "cname.test.":
        return [(0, reply(dns.rcode.NOERROR, (name, "CNAME", "ok.test."),
                          *([("ok.test.", "A", SERVER)] if a else [])))]
    if name == "bogon.test.":
        return [(0, reply(dns.rcode.NOERROR, *([(name, "A", BOGON)] if a else [])))]
    if name == "twice.test.":
        # The injector answers at once; the real answer follows 50 ms later.
        return [(0, reply(dns.rcode.NOERROR, (name, "A", FORGED))),
                (0.05, reply(dns.rcode.NOERROR, (name, "A", SERVER)))]
    if name == "servfail.test.":
        return [(0, reply(dns.rcode.SERVFAIL))]
    if name == "refused.test.":
        return [(0, reply(dns.rcode.REFUSED))]
    if name == "garbage.test.":
        return [(0, b"\x00\x01garbage")]
    if name == "wrongid.test.":
        wrong = bytearray(reply(dns.rcode.NOERROR, (name, "A", SERVER)))
        wrong[0:2] = ((query.id + 1) % 65536).to_bytes(2, "big")
        return [(0, bytes(wrong))]
    if name == "silent.test.":
        return []
    if name == "lossy.test.":
        # Only a retransmission is answered: the first copy was "lost".
        if query.id not in _LOSSY_SEEN:
            _LOSSY_SEEN.add(query.id)
            return []
        return [(0, reply(dns.rcode.NOERROR, *([(name, "A", SERVER)] if a else [])))]
    return [(0, reply(dns.rcode.NXDOMAIN))]


class _DNSProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        for delay, datagram in dns_replies(data):
            loop.call_later(delay, self.transport.sendto, datagram, addr)


async def _dns_over_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    (length,) = struct.unpack("!H", await reader.readexactly(2))
    replies = dns_replies(await reader.readexactly(length))
    if replies:
        _, datagram = replies[0]
        writer.write(struct.pack("!H", len(datagram)) + datagram)
        await writer.drain()
        writer.close()
    else:
        await reader.read()  # silent: hold until the client gives up


# --------------------------------------------------------------------------
# HTTP: one request per connection, routes by path.

PAGE = (
    "<html><head><title>\n  Hello from 127.0.0.2,\n you are 127.0.0.1 (via 10.1.2.3)"
    "</title></head><body>your address is 127.0.0.1</body></html>"
).encode()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    port = writer.get_extra_info("sockname")[1]

    async def respond(status: str, extra: list[tuple[str, str]], content: bytes = b"") -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(content)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in extra]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + content)
        await writer.drain()

    scheme = "https" if writer.get_extra_info("ssl_object") else "http"
    if path == "/page":
        await respond("200 OK", [
            ("Content-Type", "text/html; charset=utf-8"),
            ("X-Client", "127.0.0.1"), ("X-Server", SERVER),
            ("X-Forwarded-For", "10.1.2.3, [2001:db8::7]:443"),
            ("X-Agent", headers.get("user-agent", "")),
        ], PAGE)
    elif path == "/redirect":
        await respond("302 Found", [("Location", "/page")])
    elif path == "/redirect-other":
        await respond("301 Moved", [("Location", f"{scheme}://other.test:{port}/page")])
    elif path == "/redirect-nx":
        await respond("302 Found", [("Location", f"{scheme}://nx.test:{port}/page")])
    elif path == "/loop":
        await respond("302 Found", [("Location", "/loop")])
    elif path == "/big":
        await respond("200 OK", [("Content-Type", "text/plain")], b"x" * 200_000)
    elif path == "/trickle":
        # 1 MB announced, 2 kB every 50 ms: a throttled download (40 kB/s).
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n")
        for _ in range(500):
            writer.write(b"y" * 2000)
            await writer.drain()
            await asyncio.sleep(0.05)
    elif path == "/garbage":
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    elif path == "/slow":
        await reader.read()  # never answers
    elif path == "/dns-query" and method == "POST":
        _, datagram = dns_replies(body)[0]
        await respond("200 OK", [("Content-Type", "application/dns-message")], datagram)
    # "/close" and anything else: close without a word.
    writer.close()


# --------------------------------------------------------------------------
# Plain TCP behaviours


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never speak; close when the client does."""
    await reader.read()
    writer.close()


async def _close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close (FIN) once the client has spoken.

    Closing before the client's first bytes arrive would make the kernel
    answer them with a RST, racing the FIN: EOF or reset by chance.
    """
    await reader.read(65536)
    writer.close()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reset the connection once the client speaks (as an SNI filter does)."""
    await reader.read(1)
    sock = writer.get_extra_info("socket")
    # SO_LINGER with a zero timeout: close() sends RST, not FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _not_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"\x00" * 64)
    await writer.drain()
    await reader.read()
    writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopbackServers:
    """All servers, on one background loop; ports by name after start()."""

    def __init__(self, certs: Certs) -> None:
        self.certs = certs
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        # TLS servers whose certificate a test client rejects log "SSL
        # handshake failed" through the loop: expected, so kept quiet.
        self._loop.set_exception_handler(lambda loop, context: None)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._closers: list[Callable[[], object]] = []

    def start(self) -> LoopbackServers:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        for close in self._closers:
            self._loop.call_soon_threadsafe(close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(_DNSProtocol, local_addr=(SERVER, 0))
        self._closers.append(transport.close)
        self.ports["dns"] = transport.get_extra_info("sockname")[1]
        # DNS over TCP on the same port number (RFC 7766).
        await self._serve("dns-tcp", _dns_over_tcp, port=self.ports["dns"])
        certs = self.certs
        await self._serve("http", _http)
        await self._serve("https", _http, server_context(certs.good, ["http/1.1"]))
        await self._serve("tls-good", _hold, server_context(certs.good, ["h2", "http/1.1"]))
        await self._serve("tls-wrong", _hold, server_context(certs.wrong))
        await self._serve("tls-expired", _hold, server_context(certs.expired))
        await self._serve("tls-self", _hold, server_context(certs.self_signed))
        await self._serve("hold", _hold)
        await self._serve("close", _close)
        await self._serve("reset", _reset)
        await self._serve("not-tls", _not_tls)
        self.ports["closed"] = _closed_port()
        self.ports["backlog"] = self._full_backlog()

    async def _serve(self, name: str, handler: Handler, context: ssl.SSLContext | None = None,
                     port: int = 0) -> None:
        server = await asyncio.start_server(_quiet(handler), SERVER, port, ssl=context)
        self._closers.append(server.close)
        self.ports[name] = server.sockets[0].getsockname()[1]

    def _full_backlog(self) -> int:
        """A port whose SYNs are dropped: connects to it time out.

        Linux drops a SYN when the listener's accept queue is full
        (tcp_conn_request: "if (sk_acceptq_is_full(sk)) goto drop"),
        whatever tcp_syncookies says. With listen(0) the queue holds one
        connection; one filler connection that is never accepted fills it.
        """
        listener = socket.socket()
        listener.bind((SERVER, 0))
        listener.listen(0)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        self._closers += [listener.close, filler.close]
        return listener.getsockname()[1]


def _closed_port() -> int:
    """A port nobody listens on: connects to it are refused."""
    with socket.socket() as sock:
        sock.bind((SERVER, 0))
        return sock.getsockname()[1]


def _quiet(handler: Handler) -> Handler:
    """Handlers end when clients vanish; that is not a server error."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            writer.transport.abort()

    return run
