"""failure_from_exception as a table, plus: it never raises."""

from __future__ import annotations

import asyncio
import errno
import ssl

import dns.exception
import dns.message
import dns.resolver
import h11
import httpcore
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.model import Failure
from probe.net.errors import CheckError, failure_from_exception
from probe.net.guard import AddressNotAllowedError


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code = code
    return exc


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    """``outer`` as ``raise outer from inner`` leaves it."""
    try:
        try:
            raise inner
        except BaseException as caught:
            raise outer from caught
    except BaseException as result:
        return result


def _raised_during(outer: BaseException, inner: BaseException) -> BaseException:
    """``outer`` raised while handling ``inner`` (implicit __context__)."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904
    except BaseException as result:
        return result


TABLE: list[tuple[BaseException, Failure]] = [
    (AddressNotAllowedError("198.51.100.1"), Failure.ADDRESS_NOT_ALLOWED),
    (CheckError(Failure.DNS_NO_RESOLVER, "x"), Failure.DNS_NO_RESOLVER),
    (TimeoutError(), Failure.GENERIC_TIMEOUT),
    (asyncio.TimeoutError(), Failure.GENERIC_TIMEOUT),
    (OSError(errno.ETIMEDOUT, "timed out"), Failure.GENERIC_TIMEOUT),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Failure.CONNECTION_REFUSED),
    (OSError(errno.ECONNREFUSED, "refused"), Failure.CONNECTION_REFUSED),
    (ConnectionResetError("Connection lost"), Failure.CONNECTION_RESET),
    (OSError(errno.ECONNRESET, "reset"), Failure.CONNECTION_RESET),
    (BrokenPipeError(errno.EPIPE, "pipe"), Failure.CONNECTION_RESET),
    (OSError(errno.EPIPE, "pipe"), Failure.CONNECTION_RESET),
    (ConnectionAbortedError(errno.ECONNABORTED, "aborted"), Failure.CONNECTION_ABORTED),
    (OSError(errno.EHOSTUNREACH, "no route"), Failure.HOST_UNREACHABLE),
    (OSError(errno.ENETUNREACH, "unreachable"), Failure.NETWORK_UNREACHABLE),
    (OSError(errno.EADDRNOTAVAIL, "no address"), Failure.NETWORK_UNREACHABLE),
    (OSError(errno.EPERM, "not permitted"), Failure.UNKNOWN),
    (_verify_error(62), Failure.SSL_INVALID_HOSTNAME),
    (_verify_error(64), Failure.SSL_INVALID_HOSTNAME),
    (_verify_error(18), Failure.SSL_UNKNOWN_AUTHORITY),
    (_verify_error(19), Failure.SSL_UNKNOWN_AUTHORITY),
    (_verify_error(20), Failure.SSL_UNKNOWN_AUTHORITY),
    (_verify_error(10), Failure.SSL_INVALID_CERTIFICATE),  # expired
    (ssl.SSLCertVerificationError(1, "no code"), Failure.SSL_INVALID_CERTIFICATE),
    (ssl.SSLEOFError(8, "EOF"), Failure.EOF),
    (ssl.SSLZeroReturnError(6, "closed"), Failure.EOF),
    (ssl.SSLError(1, "wrong version number"), Failure.SSL_FAILED_HANDSHAKE),
    (asyncio.IncompleteReadError(b"ab", 4), Failure.EOF),
    (dns.exception.Timeout(), Failure.GENERIC_TIMEOUT),
    (dns.resolver.NXDOMAIN(), Failure.DNS_NXDOMAIN),
    (dns.resolver.NoAnswer(), Failure.DNS_NO_ANSWER),
    (dns.resolver.NoResolverConfiguration(), Failure.DNS_NO_RESOLVER),
    (dns.message.ShortHeader(), Failure.DNS_SERVER_MISBEHAVING),
    (dns.exception.FormError(), Failure.DNS_SERVER_MISBEHAVING),
    # httpx/httpcore wrappers: the error underneath decides.
    (_raised_from(httpx.ConnectError("x"), ConnectionRefusedError(errno.ECONNREFUSED, "")),
     Failure.CONNECTION_REFUSED),
    (_raised_from(httpx.ConnectError("x"),
                  _raised_from(httpcore.ConnectError("y"), _verify_error(62))),
     Failure.SSL_INVALID_HOSTNAME),
    (_raised_from(httpx.ReadError("x"), ConnectionResetError()), Failure.CONNECTION_RESET),
    (_raised_during(httpx.ReadError("x"), OSError(errno.ECONNRESET, "")),
     Failure.CONNECTION_RESET),
    (_raised_from(httpx.RemoteProtocolError("x"),
                  _raised_from(httpcore.RemoteProtocolError("y"),
                               h11.RemoteProtocolError("illegal status line"))),
     Failure.HTTP_INVALID_RESPONSE),
    (_raised_from(httpx.RemoteProtocolError("x"),
                  h11.RemoteProtocolError("peer closed connection without sending "
                                          "complete message body: incomplete chunked read")),
     Failure.EOF),
    # Cut inside a chunk-size line or the trailers.
    (_raised_from(httpx.RemoteProtocolError("x"),
                  h11.RemoteProtocolError("peer unexpectedly closed connection")),
     Failure.EOF),
    # httpcore's bare "Server disconnected without sending a response."
    (_raised_from(httpx.RemoteProtocolError("x"), httpcore.RemoteProtocolError("y")),
     Failure.EOF),
    (httpcore.RemoteProtocolError("Server disconnected"), Failure.EOF),
    (httpx.ReadTimeout("x"), Failure.GENERIC_TIMEOUT),
    (_raised_from(httpx.ConnectTimeout("x"), httpcore.ConnectTimeout("y")),
     Failure.GENERIC_TIMEOUT),
    (httpx.TooManyRedirects("x"), Failure.HTTP_TOO_MANY_REDIRECTS),
    (httpx.DecodingError("x"), Failure.HTTP_INVALID_RESPONSE),
    (httpx.ConnectError("nothing underneath"), Failure.UNKNOWN),
    (ValueError("odd"), Failure.UNKNOWN),
    (RuntimeError("odd"), Failure.UNKNOWN),
]


@pytest.mark.parametrize(("exc", "expected"), TABLE, ids=[repr(e)[:60] for e, _ in TABLE])
def test_failure_table(exc: BaseException, expected: Failure) -> None:
    assert failure_from_exception(exc) is expected


def test_an_explicit_cause_wins_over_an_implicit_context() -> None:
    exc = _raised_during(
        _raised_from(httpx.ReadError("x"), ConnectionResetError()), TimeoutError()
    )
    assert failure_from_exception(exc) is Failure.CONNECTION_RESET


def test_a_chain_cut_with_from_none_is_still_followed() -> None:
    # What httpcore's pool does to the errors it mapped.
    wrapped = _raised_from(httpcore.RemoteProtocolError("x"),
                           h11.RemoteProtocolError("illegal status line"))
    try:
        try:
            raise wrapped
        except httpcore.RemoteProtocolError as exc:
            raise exc from None
    except httpcore.RemoteProtocolError as exc:
        assert exc.__cause__ is None and exc.__suppress_context__
        assert failure_from_exception(exc) is Failure.HTTP_INVALID_RESPONSE


def test_a_cycle_in_the_chain_ends() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert failure_from_exception(first) is Failure.UNKNOWN


@given(
    st.sampled_from(TABLE),
    st.lists(st.sampled_from([RuntimeError, httpx.ConnectError, httpcore.ConnectError]),
             max_size=4),
    st.booleans(),
)
def test_opaque_wrappers_do_not_change_the_failure(
    case: tuple[BaseException, Failure], wrappers: list[type[Exception]], explicit: bool
) -> None:
    leaf, expected = case
    exc: BaseException = leaf
    for wrapper in wrappers:
        outer = wrapper("wrapped")
        if explicit:
            outer.__cause__ = exc
        else:
            outer.__context__ = exc
        exc = outer
    assert failure_from_exception(exc) is expected
