"""Exceptions in, failure strings out: the one place that translates them.

Modelled on httpx's ``map_httpcore_exceptions``: every check catches what
it meets and asks :func:`failure_from_exception` for the report's word
for it, so the vocabulary stays closed (``probe.model.Failure``) and the
mapping is tested once, as a table.

Wrapping libraries (httpx, httpcore) re-raise low-level errors as their
own types with ``raise ... from exc``. The wrapper says little ("connect
error"); the socket error under it says what the network did. So
wrappers are peeled first and only mapped themselves when nothing
under them is known.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl

import dns.exception
import dns.resolver
import h11
import httpcore
import httpx

from probe.model import Failure

_log = logging.getLogger(__name__)


class CheckError(Exception):
    """An error raised by our own code that already knows its failure."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h).
_HOSTNAME_MISMATCH = {62, 64}  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_UNKNOWN_AUTHORITY = {
    2,  # UNABLE_TO_GET_ISSUER_CERT
    18,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19,  # SELF_SIGNED_CERT_IN_CHAIN
    20,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
}

_ERRNO: dict[int, Failure] = {
    errno.ECONNREFUSED: Failure.CONNECTION_REFUSED,
    errno.ECONNRESET: Failure.CONNECTION_RESET,
    # Writing after the peer reset the connection: the reset is the news.
    errno.EPIPE: Failure.CONNECTION_RESET,
    errno.ECONNABORTED: Failure.CONNECTION_ABORTED,
    errno.EHOSTUNREACH: Failure.HOST_UNREACHABLE,
    errno.EHOSTDOWN: Failure.HOST_UNREACHABLE,
    errno.ENETUNREACH: Failure.NETWORK_UNREACHABLE,
    errno.ENETDOWN: Failure.NETWORK_UNREACHABLE,
    # No source address of that family (an IPv6 target on a v4-only host).
    errno.EADDRNOTAVAIL: Failure.NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: Failure.GENERIC_TIMEOUT,
}

# Subclasses of OSError that asyncio raises without an errno
# (e.g. ConnectionResetError("Connection lost") from StreamWriter.drain).
_OSERROR_TYPES: tuple[tuple[type[OSError], Failure], ...] = (
    (ConnectionRefusedError, Failure.CONNECTION_REFUSED),
    (ConnectionResetError, Failure.CONNECTION_RESET),
    (BrokenPipeError, Failure.CONNECTION_RESET),
    (ConnectionAbortedError, Failure.CONNECTION_ABORTED),
)

# The DNS names of dnspython's stub-resolver exceptions (used when a
# caller goes through dns.resolver, e.g. for the system configuration).
_DNS: tuple[tuple[type[BaseException], Failure], ...] = (
    (dns.exception.Timeout, Failure.GENERIC_TIMEOUT),
    (dns.resolver.NXDOMAIN, Failure.DNS_NXDOMAIN),
    (dns.resolver.NoAnswer, Failure.DNS_NO_ANSWER),
    (dns.resolver.NoResolverConfiguration, Failure.DNS_NO_RESOLVER),
    (dns.resolver.NoNameservers, Failure.DNS_SERVER_MISBEHAVING),
    (dns.exception.DNSException, Failure.DNS_SERVER_MISBEHAVING),
)

def failure_from_exception(exc: BaseException) -> Failure:
    """The failure string for ``exc``; ``Failure.UNKNOWN`` if unknown."""
    chain = _chain(exc)
    for link in chain:
        direct = _direct(link)
        if direct is not None:
            return direct
    # Only wrappers: the innermost one is the most specific.
    for link in reversed(chain):
        wrapped = _wrapper(link)
        if wrapped is not None:
            return wrapped
    # Often a bug rather than the network: `probe --debug` shows it on
    # stderr (never in the report, which only says unknown_failure).
    _log.debug("unknown_failure: %s: %s", type(exc).__name__, exc, exc_info=exc)
    return Failure.UNKNOWN


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from (explicitly, else implicitly).

    A context hidden with ``from None`` is followed too: httpcore's pool
    re-raises its mapped errors that way, which cuts the explicit cause
    and leaves the socket or h11 error only as the context.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not link for link in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _direct(exc: BaseException) -> Failure | None:
    """The failure of a low-level exception; None for wrappers and unknowns."""
    if isinstance(exc, CheckError):
        return exc.failure
    if isinstance(exc, ssl.SSLError):
        return _ssl(exc)
    # Before OSError: TimeoutError is an OSError (and asyncio's, since 3.11).
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return Failure.GENERIC_TIMEOUT
    if isinstance(exc, OSError):
        for kind, failure in _OSERROR_TYPES:
            if isinstance(exc, kind):
                return failure
        return _ERRNO.get(exc.errno or 0)
    # IncompleteReadError is an EOFError: the peer closed mid-message.
    if isinstance(exc, EOFError):
        return Failure.EOF
    for kind, failure in _DNS:
        if isinstance(exc, kind):
            return failure
    if isinstance(exc, h11.RemoteProtocolError):
        # h11 says so when the body, or a chunk-size line or the trailers in
        # it, was cut short: an EOF, not garbage (h11/_readers.py and
        # h11/_connection.py; OONI reports Go's io.ErrUnexpectedEOF the same way).
        if str(exc).startswith(("peer closed connection", "peer unexpectedly closed connection")):
            return Failure.EOF
        return Failure.HTTP_INVALID_RESPONSE
    return None


def _ssl(exc: ssl.SSLError) -> Failure:
    if isinstance(exc, ssl.SSLCertVerificationError):
        # Set by the ssl module when OpenSSL reports one; absent otherwise.
        code = getattr(exc, "verify_code", None)
        if code in _HOSTNAME_MISMATCH:
            return Failure.SSL_INVALID_HOSTNAME
        if code in _UNKNOWN_AUTHORITY:
            return Failure.SSL_UNKNOWN_AUTHORITY
        return Failure.SSL_INVALID_CERTIFICATE
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return Failure.EOF
    return Failure.SSL_FAILED_HANDSHAKE


def _wrapper(exc: BaseException) -> Failure | None:
    """The failure of an httpx/httpcore wrapper; None if not one."""
    if isinstance(exc, (httpx.TimeoutException, httpcore.TimeoutException)):
        return Failure.GENERIC_TIMEOUT
    if isinstance(exc, httpx.TooManyRedirects):
        return Failure.HTTP_TOO_MANY_REDIRECTS
    if isinstance(exc, httpcore.RemoteProtocolError):
        # Raised bare by httpcore when the server closes before a response
        # ("Server disconnected without sending a response").
        return Failure.EOF
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.DecodingError,
                        httpcore.ProtocolError)):
        return Failure.HTTP_INVALID_RESPONSE
    return None
