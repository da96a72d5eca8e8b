"""Flow records to the probe's observations, with the failure a client saw.

The live checks record what their socket reported; here the same words
are inferred from packets, with the live timeouts as the yardstick (a
client gives up after them, so whatever came later is not part of what
it saw). Errors go through ``probe.net.errors.failure_from_exception``,
so that an ICMP "port unreachable" becomes exactly the failure the
kernel's ECONNREFUSED becomes in a live run.

The rules, in the order they are tried, are in docs/replay.md.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from probe.model import (
    DNSObservation,
    Failure,
    HTTPHop,
    HTTPObservation,
    TCPObservation,
    TLSObservation,
    Transfer,
)
from probe.net.certs import certificate_from_der
from probe.net.errors import failure_from_exception
from probe.net.scrub import scrub
from probe.plan import CheckSettings
from probe.replay.records import (
    DNSExchange,
    HTTPExchange,
    ICMPError,
    TCPConnection,
    TLSFacts,
)
from probe.replay.tls import first_fatal
from probe.replay.trust import names_server
from probe.resolver import ResolverSpec
from probe.wire.http1 import header
from probe.wire.tls import Alert

# ICMP destination unreachable codes to the errno Linux gives a connecting
# socket (net/ipv4/icmp.c icmp_err_convert; net/ipv6/icmp.c tab_unreach).
_ICMP4_UNREACHABLE = {
    0: errno.ENETUNREACH, 1: errno.EHOSTUNREACH, 2: errno.ENOPROTOOPT, 3: errno.ECONNREFUSED,
    4: errno.EMSGSIZE, 5: errno.EOPNOTSUPP, 6: errno.ENETUNREACH, 7: errno.EHOSTDOWN,
    8: errno.ENONET, 9: errno.ENETUNREACH, 10: errno.EHOSTUNREACH, 11: errno.ENETUNREACH,
    12: errno.EHOSTUNREACH, 13: errno.EHOSTUNREACH, 14: errno.EHOSTUNREACH,
    15: errno.EHOSTUNREACH,
}
_ICMP6_UNREACHABLE = {
    0: errno.ENETUNREACH, 1: errno.EACCES, 2: errno.EHOSTUNREACH, 3: errno.EHOSTUNREACH,
    4: errno.ECONNREFUSED, 5: errno.EACCES, 6: errno.EACCES,
}

# Alerts an OpenSSL client sends when it rejects a certificate
# (ssl/statem/statem_lib.c, ssl_x509err2alert) and what the live check
# reports for the verification error behind each.
_CERTIFICATE_ALERTS = {
    48: Failure.SSL_UNKNOWN_AUTHORITY,  # unknown_ca: issuer unknown, self-signed
    43: Failure.SSL_INVALID_CERTIFICATE,  # unsupported_certificate
    44: Failure.SSL_INVALID_CERTIFICATE,  # certificate_revoked
    45: Failure.SSL_INVALID_CERTIFICATE,  # certificate_expired
    46: Failure.SSL_INVALID_CERTIFICATE,  # certificate_unknown
}
_BAD_CERTIFICATE = 42  # hostname mismatch, but also not yet valid, weak key ...

# A timed download closes right after its budget runs out; the capture sees
# the response head a little before the client's clock started, never after.
_CUT_TOLERANCE = 0.05


# Why a client that hung up mid-handshake refused the server: (certificates
# seen, the server name it asked for, capture time) -> the failure its
# verification gave, None if the chain verifies (probe.replay.trust).
Judge = Callable[[tuple[bytes, ...], str, float], Failure | None]


@dataclass(frozen=True, slots=True)
class StageEnd:
    """How a stage (connect, handshake, exchange) ended for the client:
    its failure (None: it worked) and when."""

    failure: Failure | None
    t: float


def icmp_failure(error: ICMPError) -> Failure:
    """The failure a socket reports for an ICMP error about its flow."""
    if (error.version == 4 and error.type == 11) or (error.version == 6 and error.type == 3):
        code = errno.EHOSTUNREACH  # time exceeded
    else:
        table = _ICMP4_UNREACHABLE if error.version == 4 else _ICMP6_UNREACHABLE
        code = table.get(error.code, errno.EHOSTUNREACH)
    return failure_from_exception(OSError(code, os.strerror(code)))


def deadline(start: float, timeout: float, capture_end: float) -> float:
    """When a client that heard nothing gave up: its timeout, or the end
    of the capture if that came first (nothing more can be known)."""
    return round(min(start + timeout, max(capture_end, start)), 6)


# --------------------------------------------------------------------------
# DNS


def dns_observation(
    exchange: DNSExchange, settings: CheckSettings, capture_end: float
) -> DNSObservation:
    """What the live DNS check would have recorded for this exchange.

    Over UDP it listens ``dns_window`` seconds after the first response;
    over TCP it reads one response. Later responses are left out here
    (the per-flow account keeps them all).
    """
    timeout = settings.dns_timeout
    in_time = [r for r in exchange.responses if r.t - exchange.t0 <= timeout]
    if in_time and exchange.transport == "udp":
        window_end = in_time[0].t + settings.dns_window
        kept = tuple(r for r in in_time if r.t <= window_end)
    else:
        kept = tuple(in_time[:1])
    # Spelled as a live run spells the resolver it was given.
    resolver = ResolverSpec(exchange.transport, exchange.server, exchange.server_port).text
    failure: Failure | None
    if kept:
        failure = kept[0].stub_failure(exchange.rtype)
        t = round(kept[0].t + settings.dns_window, 6) if exchange.transport == "udp" else kept[0].t
    elif exchange.icmp is not None and exchange.icmp.t - exchange.t0 <= timeout:
        failure, t = icmp_failure(exchange.icmp), exchange.icmp.t
    else:
        t = deadline(exchange.t0, timeout, capture_end)
        failure = Failure.DNS_SERVER_MISBEHAVING if exchange.ignored else Failure.GENERIC_TIMEOUT
    return DNSObservation(
        query=exchange.name,
        rtype=exchange.rtype,
        resolver=resolver,
        t0=exchange.t0,
        t=t,
        failure=failure,
        responses=kept,
    )


# --------------------------------------------------------------------------
# TCP


def connect_outcome(conn: TCPConnection, timeout: float, capture_end: float) -> StageEnd:
    """How the connect ended for the client: the first of SYN-ACK, RST,
    ICMP error within the timeout; otherwise a timeout."""
    start = conn.t_syn if conn.t_syn is not None else conn.t_first
    if conn.t_syn is None:
        return StageEnd(None, start)  # the capture began mid-connection
    events: list[tuple[float, Failure | None]] = []
    if conn.t_synack is not None:
        events.append((conn.t_synack, None))
    refusal = next((r for r in conn.resets if r.by == "server" and not r.established), None)
    if refusal is not None and conn.t_synack is None:
        events.append((refusal.t, Failure.CONNECTION_REFUSED))
    if conn.icmp is not None:
        events.append((conn.icmp.t, icmp_failure(conn.icmp)))
    events = sorted((e for e in events if e[0] - start <= timeout), key=lambda e: e[0])
    if events:
        t, failure = events[0]
        return StageEnd(failure, t)
    return StageEnd(Failure.GENERIC_TIMEOUT, deadline(start, timeout, capture_end))


def tcp_observation(conn: TCPConnection, settings: CheckSettings, capture_end: float) -> TCPObservation:
    outcome = connect_outcome(conn, settings.tcp_timeout, capture_end)
    t0 = conn.t_syn if conn.t_syn is not None else conn.t_first
    return TCPObservation(conn.server, conn.server_port, t0, outcome.t, outcome.failure)


# --------------------------------------------------------------------------
# TLS


def handshake_outcome(
    conn: TCPConnection, timeout: float, capture_end: float, judge: Judge | None = None
) -> StageEnd:
    """How the handshake on an established connection ended for the client."""
    start = conn.t_synack if conn.t_synack is not None else conn.t_first
    tls = conn.tls
    if tls is not None and tls.t_done is not None and tls.t_done - start <= timeout:
        return StageEnd(None, tls.t_done)
    events: list[tuple[float, Failure]] = []
    if tls is not None:
        client = first_fatal(tls.alerts, "client")
        if client is not None:
            events.append((client.t, _client_alert_failure(client.alert, tls)))
        hangup = _client_hangup(conn)
        if hangup is not None:
            events.append((hangup, _refusal(conn, tls, hangup, judge)))
        server = first_fatal(tls.alerts, "server")
        if server is not None:
            events.append((server.t, Failure.SSL_FAILED_HANDSHAKE))
        if tls.error is not None and tls.error.startswith("server"):
            # The server answered with something that is not TLS (OpenSSL:
            # "wrong version number" and the like).
            when = conn.t_server_data if conn.t_server_data is not None else conn.t_last
            events.append((when, Failure.SSL_FAILED_HANDSHAKE))
    reset = next((r for r in conn.resets if r.by == "server"), None)
    if reset is not None:
        events.append((reset.t, Failure.CONNECTION_RESET))
    if conn.t_fin_server is not None:
        events.append((conn.t_fin_server, Failure.EOF))
    events = sorted((e for e in events if e[0] - start <= timeout), key=lambda e: e[0])
    if events:
        t, failure = events[0]
        return StageEnd(failure, t)
    return StageEnd(Failure.GENERIC_TIMEOUT, deadline(start, timeout, capture_end))


def _client_hangup(conn: TCPConnection) -> float | None:
    """When the client closed (FIN or RST) after the server's hello, if it did."""
    tls = conn.tls
    if tls is None or tls.t_server_hello is None:
        return None
    times = [r.t for r in conn.resets if r.by == "client"]
    if conn.t_fin_client is not None:
        times.append(conn.t_fin_client)
    after = [t for t in times if t >= tls.t_server_hello]
    return min(after, default=None)


def _refusal(conn: TCPConnection, tls: TLSFacts, t: float, judge: Judge | None) -> Failure:
    """A client that hung up mid-handshake without an alert refused the
    server: for its certificate when verifying it fails (probe.replay.trust)."""
    sni = tls.client_hello.sni if tls.client_hello is not None else None
    if tls.certificates and judge is not None:
        return judge(tls.certificates, sni or conn.server, t) or Failure.SSL_FAILED_HANDSHAKE
    return Failure.SSL_FAILED_HANDSHAKE


def _client_alert_failure(alert: Alert | None, tls: TLSFacts) -> Failure:
    """Why the client aborted, from its alert (None: it was encrypted)."""
    if alert is None:
        return Failure.SSL_FAILED_HANDSHAKE
    if alert.description in _CERTIFICATE_ALERTS:
        return _CERTIFICATE_ALERTS[alert.description]
    if alert.description == _BAD_CERTIFICATE:
        # Mostly a name mismatch; when the certificate is visible and does
        # name the server, it was something else about the certificate.
        sni = tls.client_hello.sni if tls.client_hello else None
        if tls.certificates and sni and names_server(tls.certificates[0], sni):
            return Failure.SSL_INVALID_CERTIFICATE
        return Failure.SSL_INVALID_HOSTNAME
    return Failure.SSL_FAILED_HANDSHAKE


def tls_observation(
    conn: TCPConnection, sni: str, alpn: tuple[str, ...], settings: CheckSettings,
    capture_end: float, judge: Judge | None = None,
) -> tuple[TCPObservation, TLSObservation]:
    """The pair the live TLS check records: its connect, then its handshake."""
    connect = tcp_observation(conn, settings, capture_end)
    tls = conn.tls
    hello = tls.client_hello if tls is not None else None
    offered_sni = hello.sni if hello is not None and hello.sni else sni
    offered_alpn = hello.alpn if hello is not None else alpn
    if connect.failure is not None:
        return connect, TLSObservation(
            conn.server, conn.server_port, offered_sni, offered_alpn, connect.t0, connect.t,
            connect.failure,
        )
    outcome = handshake_outcome(conn, settings.tls_timeout, capture_end, judge)
    done = outcome.failure is None and tls is not None and tls.server_hello is not None
    return connect, TLSObservation(
        address=conn.server,
        port=conn.server_port,
        sni=offered_sni,
        alpn_offered=offered_alpn,
        t0=connect.t0,
        t=outcome.t,
        failure=outcome.failure,
        version=tls.server_hello.version_name if done and tls and tls.server_hello else None,
        cipher=tls.server_hello.cipher_name if done and tls and tls.server_hello else None,
        alpn=tls.alpn if done and tls else None,
        certificates=tuple(certificate_from_der(der) for der in tls.certificates) if tls else (),
        # The client finished the handshake: it accepted the chain.
        verified=done,
    )


# --------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One request of a fetch (the first, or a redirect's): the connection
    it went on and what came back. The observation's record of a redirect
    is ``probe.model.HTTPHop``."""

    url: str
    conn: TCPConnection
    exchange: HTTPExchange | None
    tls: bool



def exchange_outcome(
    request: FetchRequest, settings: CheckSettings, capture_end: float,
    judge: Judge | None = None, cut_at: float | None = None,
) -> StageEnd:
    """How one request ended: connect, TLS, then the response (``cut_at``:
    the client stopped reading a timed download then, see ``cut_download``)."""
    connect = connect_outcome(request.conn, settings.http_timeout, capture_end)
    if connect.failure is not None:
        return connect
    if request.tls:
        handshake = handshake_outcome(request.conn, settings.http_timeout, capture_end, judge)
        if handshake.failure is not None:
            return handshake
    if cut_at is not None:
        return StageEnd(None, cut_at)
    exchange = request.exchange
    if exchange is not None and exchange.complete and exchange.t_end is not None:
        return StageEnd(None, exchange.t_end)
    if exchange is not None and exchange.body_truncated:
        return StageEnd(None, exchange.t_end or request.conn.t_last)  # read up to the cap
    conn = request.conn
    reset = next((r for r in conn.resets if r.by == "server"), None)
    events: list[tuple[float, Failure]] = []
    if reset is not None:
        events.append((reset.t, Failure.CONNECTION_RESET))
    if conn.t_fin_server is not None:
        events.append((conn.t_fin_server, Failure.EOF))
    if exchange is not None and exchange.t_invalid is not None:
        events.append((exchange.t_invalid, Failure.HTTP_INVALID_RESPONSE))
    start = exchange.t_request if exchange is not None else connect.t
    events = sorted(e for e in events if e[0] >= start)
    if events:
        return StageEnd(events[0][1], events[0][0])
    return StageEnd(Failure.GENERIC_TIMEOUT, deadline(start, settings.http_timeout, capture_end))


def cut_download(request: FetchRequest, download_time: float) -> float | None:
    """When the client gave up on a timed download (``probe.net.http``'s
    ``download_time``): it closed (with a RST) before the body ended, its
    budget spent; None when the body ended, reached the cap, or the close
    came sooner (something else went wrong)."""
    exchange = request.exchange
    if (exchange is None or exchange.complete or exchange.body_truncated
            or exchange.t_response is None):
        return None
    conn = request.conn
    closes = [r.t for r in conn.resets if r.by == "client"]
    if conn.t_fin_client is not None:
        closes.append(conn.t_fin_client)
    close = min((t for t in closes if t >= exchange.t_response), default=None)
    if close is None or close - exchange.t_response < download_time - _CUT_TOLERANCE:
        return None
    return close


def transfer(exchange: HTTPExchange, download_time: float, cut: bool) -> Transfer:
    """The body's timing as ``probe.net.http`` measures it: from the end of
    the response head to the last body byte read; a cut download counts
    its whole budget."""
    assert exchange.t_response is not None
    size = exchange.body_length or 0
    if cut:
        return Transfer(size, round(download_time, 6), True)
    last = exchange.t_body if exchange.t_body is not None else exchange.t_response
    return Transfer(size, round(last - exchange.t_response, 6), False)


def http_observation(
    url: str, method: str, requests: list[FetchRequest], settings: CheckSettings,
    capture_end: float, body_contains: str | None, redirect_failure: Failure | None,
    judge: Judge | None = None, download_time: float | None = None,
) -> HTTPObservation:
    """The observation of one fetch with its redirects, as ``probe.net.http``
    records it (every IP literal but the servers dialled scrubbed).
    ``redirect_failure``: the redirects went wrong (too many, a bad Location);
    ``download_time``: the final body was timed (a throughput target)."""
    first, last = requests[0], requests[-1]
    cut_at = cut_download(last, download_time) if download_time is not None else None
    outcome = exchange_outcome(last, settings, capture_end, judge, cut_at)
    failure = redirect_failure or outcome.failure
    exchange = last.exchange
    keep = {request.conn.server for request in requests}
    received = failure is None and exchange is not None and exchange.status is not None
    found = dict(exchange.needles).get(body_contains) if exchange and body_contains else None
    if cut_at is not None and found is False:
        found = None  # it may be further on, in what was never read (find_in_body)
    t0 = first.conn.t_syn if first.conn.t_syn is not None else first.conn.t_first
    return HTTPObservation(
        url=url,
        method=method,
        address=first.conn.server,
        t0=t0,
        t=outcome.t,
        failure=failure,
        # A failed redirect leaves the live check without a final response.
        status=exchange.status if exchange is not None and redirect_failure is None else None,
        headers=tuple((k, scrub(v, keep)) for k, v in exchange.headers) if exchange else (),
        body_length=exchange.body_length if received and exchange else None,
        body_sha256=exchange.body_sha256 if received and exchange else None,
        # A cut download was not read to its end.
        body_truncated=(exchange.body_truncated or cut_at is not None) if exchange else False,
        title=exchange.title if received and exchange else None,
        redirects=tuple(
            HTTPHop(scrub(request.url, keep), request.exchange.status or 0,
                    scrub(header(request.exchange.headers, "location") or "", keep))
            for request in requests[:-1] if request.exchange is not None
        ),
        body_contains_found=found if received else None,
        transfer=(transfer(exchange, download_time, cut_at is not None)
                  if received and exchange is not None and download_time is not None else None),
    )

