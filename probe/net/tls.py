"""The TLS check: one connection, one handshake, the certificates seen.

The handshake runs over ``ssl.MemoryBIO`` (sans-I/O) on a stream from the
dialer, rather than through asyncio's start_tls, because the SSL object
must outlive a failed handshake: when verification fails, the chain the
server presented is the evidence of interception, and it is read from
that same SSL object.

Why not a second handshake with verification off, which would work on
every OpenSSL? A second ClientHello is a second trigger: a censor may
reset it under residual blocking (the 3-tuple penalty), or answer it
differently under probabilistic blocking, so the certificates recorded
could belong to another story. The second handshake is kept only as a
fallback for OpenSSL builds that drop the chain of a failed verification
(OpenSSL 3.0 keeps it, as the tests check; 1.1.1 stored it only after
verifying).
"""

from __future__ import annotations

import _ssl
import asyncio
import ssl
from collections.abc import Sequence

from probe.model import Failure, TCPObservation, TLSObservation
from probe.net.certs import certificate_from_der
from probe.net.clock import Clock
from probe.net.dialer import Dialer, close_stream, send
from probe.net.errors import failure_from_exception
from probe.net.trust import TrustStore

__all__ = ["TrustStore", "connect_and_handshake"]

_VERIFY_FAILURES = {
    Failure.SSL_INVALID_HOSTNAME,
    Failure.SSL_UNKNOWN_AUTHORITY,
    Failure.SSL_INVALID_CERTIFICATE,
}


async def connect_and_handshake(
    address: str,
    port: int,
    sni: str,
    alpn: Sequence[str],
    dialer: Dialer,
    clock: Clock,
    timeout: float,
    trust: TrustStore,
) -> tuple[TCPObservation, TLSObservation]:
    """Connect and handshake; never raises for network trouble.

    The connect under the handshake is its own observation (a failed
    connect is also the handshake's failure: there was none).

    Same connection, not a second one: the classifier needs the connect
    to tell a connect timeout (an address blackholed) from a handshake
    timeout (a ClientHello dropped for its SNI). ``timeout`` bounds the
    connect and the handshake each.
    """
    t0 = clock.now()
    try:
        reader, writer = await dialer.open_tcp(address, port, timeout)
    except Exception as exc:
        failure = failure_from_exception(exc)
        t = clock.now()
        return (
            TCPObservation(address, port, t0, t, failure),
            TLSObservation(address, port, sni, tuple(alpn), t0, t, failure),
        )
    connect = TCPObservation(address, port, t0, clock.now(), None)
    sslobj, failure = await _attempt(trust.context(), sni, alpn, reader, writer, timeout)
    t = clock.now()
    chain = _presented_chain(sslobj)
    if not chain and failure in _VERIFY_FAILURES:
        chain = await _chain_without_verification(address, port, sni, alpn, dialer, timeout)
    # Negotiated parameters only of a handshake that completed: after a
    # failure OpenSSL may know some of them, but not consistently.
    done = failure is None
    cipher = sslobj.cipher() if done else None
    return connect, TLSObservation(
        address=address,
        port=port,
        sni=sni,
        alpn_offered=tuple(alpn),
        t0=t0,
        t=t,
        failure=failure,
        version=sslobj.version() if done else None,
        cipher=cipher[0] if cipher else None,
        alpn=sslobj.selected_alpn_protocol() if done else None,
        certificates=tuple(certificate_from_der(der) for der in chain),
        verified=done,
    )


async def _attempt(
    context: ssl.SSLContext,
    sni: str,
    alpn: Sequence[str],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    timeout: float,
) -> tuple[ssl.SSLObject, Failure | None]:
    """One handshake on a connected stream, which it closes."""
    if alpn:
        context.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    failure: Failure | None = None
    try:
        async with asyncio.timeout(timeout):
            while not _step(sslobj):
                await _flush(outgoing, writer)
                data = await reader.read(65536)
                if data:
                    incoming.write(data)
                else:
                    incoming.write_eof()
            await _flush(outgoing, writer)
    except Exception as exc:
        failure = failure_from_exception(exc)
        # Send our alert (unknown_ca, bad_certificate...) as a browser would.
        writer.write(outgoing.read())
    finally:
        await close_stream(writer)
    return sslobj, failure


def _step(sslobj: ssl.SSLObject) -> bool:
    """Advance the handshake; False while it waits for the server."""
    try:
        sslobj.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


async def _flush(outgoing: ssl.MemoryBIO, writer: asyncio.StreamWriter) -> None:
    data = outgoing.read()
    if data:
        await send(writer, data)


def _presented_chain(sslobj: ssl.SSLObject) -> list[bytes]:
    """The DER certificates the server sent, leaf first, trusted or not."""
    public = getattr(sslobj, "get_unverified_chain", None)  # Python 3.13+
    if public is not None:
        return list(public())
    # Python 3.11 and 3.12 have it on the private _ssl object only.
    chain = sslobj._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    return [cert.public_bytes(_ssl.ENCODING_DER) for cert in chain or ()]


async def _chain_without_verification(
    address: str, port: int, sni: str, alpn: Sequence[str], dialer: Dialer, timeout: float
) -> list[bytes]:
    """The fallback (see the module's docstring): a second, unverified handshake.

    Whatever goes wrong here, the observation keeps the first handshake's
    failure; it only lacks the certificates.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await dialer.open_tcp(address, port, timeout)
    except Exception:
        return []
    sslobj, _ = await _attempt(context, sni, alpn, reader, writer, timeout)
    return _presented_chain(sslobj)
