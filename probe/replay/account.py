"""A readable account of a capture, flow by flow, without a test list.

"What blocking does this pcap show?": every DNS exchange, TCP connection
and UDP flow gets one line saying what happened in words (answers,
differing responses, refused, reset and by whom, TLS server name and
outcome, HTTP status), with the facts beside it as JSON data for
``--json``. Entries stream out as flows finish, so memory does not grow
with the capture; each carries its start time for sorting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.model import DNSResponse
from probe.plan import CheckSettings
from probe.replay.capfile import CaptureReader
from probe.replay.engine import CaptureSummary, ExtractOptions, Extractor
from probe.replay.observe import connect_outcome, dns_observation, handshake_outcome
from probe.replay.records import DNSExchange, Record, Reset, TCPConnection, UDPFlow
from probe.replay.report import default_settings, read_keylog
from probe.serialize import observation_to_dict
from probe.wire.tls import version_name


@dataclass(frozen=True, slots=True)
class AccountEntry:
    t: float  # when the flow started, seconds since the first packet
    kind: str  # "dns", "tcp" or "udp"
    summary: str  # one line, for people
    record: Record  # the flow's facts (probe.replay.records)
    settings: CheckSettings

    def to_dict(self) -> dict[str, Any]:
        """JSON data for programs (``--json``): built on demand, since a
        large capture printed as text never needs it."""
        return {"t": self.t, "kind": self.kind, "summary": self.summary,
                **_FACTS[self.kind](self.record, self.settings)}


def flow_account(
    pcap: Path,
    on_entry: Callable[[AccountEntry], None],
    *,
    settings: CheckSettings | None = None,
    keylog: Path | str | None = None,
) -> CaptureSummary:
    """Call ``on_entry`` for every flow of ``pcap`` as it finishes.

    Raises ``ReplayError`` for a capture that cannot be read; damage
    part-way is in the returned summary's ``warnings``.
    """
    settings = settings or default_settings()
    options = ExtractOptions(
        dns_timeout=settings.dns_timeout, body_cap=settings.body_cap, keys=read_keylog(pcap, keylog)
    )

    def emit(record: Record) -> None:
        # Streaming, the capture's end is not known yet: a silent flow is
        # judged by the live timeouts alone.
        on_entry(describe(record, settings, float("inf")))

    return Extractor(options, emit).run(CaptureReader(pcap))


def describe(record: Record, settings: CheckSettings, capture_end: float) -> AccountEntry:
    if isinstance(record, DNSExchange):
        return _dns(record, settings, capture_end)
    if isinstance(record, TCPConnection):
        return _tcp(record, settings, capture_end)
    return _udp(record, settings)


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _dns(exchange: DNSExchange, settings: CheckSettings, capture_end: float) -> AccountEntry:
    observation = dns_observation(exchange, settings, capture_end)
    where = f"{_endpoint(exchange.client, exchange.client_port)} > " \
            f"{_endpoint(exchange.server, exchange.server_port)}"
    answers = []
    for response in exchange.responses:
        data = ", ".join(a.data for a in response.answers) or "no data"
        answers.append(f"{response.rcode} [{data}] at +{response.t - exchange.t0:.3f}s "
                       f"(TTL {response.ip_ttl}, IP ID {response.ip_id})")
    if not answers:
        outcome = f"no response: {observation.failure}"
    else:
        outcome = f"{len(answers)} response{'s' if len(answers) > 1 else ''}: " + "; ".join(answers)
        distinct = {(r.rcode, frozenset((a.rtype, a.data.lower()) for a in r.answers))
                    for r in exchange.responses}
        if len(distinct) > 1:
            outcome += " -- responses differ (injection?)"
    return AccountEntry(
        t=exchange.t0,
        kind="dns",
        summary=f"DNS/{exchange.transport} {where} {exchange.name} {exchange.rtype}: {outcome}",
        record=exchange,
        settings=settings,
    )


def _dns_facts(exchange: DNSExchange, settings: CheckSettings) -> dict[str, Any]:
    return {
        "client": exchange.client, "client_port": exchange.client_port,
        "server": exchange.server, "server_port": exchange.server_port, "id": exchange.id,
        "ignored": exchange.ignored,
        "observation": observation_to_dict(dns_observation(exchange, settings, float("inf"))),
        # Every response, also those after the live check's window.
        "responses": [_response_dict(r) for r in exchange.responses],
    }


def _response_dict(response: DNSResponse) -> dict[str, Any]:
    return {
        "t": response.t, "rcode": response.rcode, "ip_ttl": response.ip_ttl,
        "ip_id": response.ip_id,
        "answers": [{"rtype": a.rtype, "data": a.data, "ttl": a.ttl} for a in response.answers],
    }


def _tcp(conn: TCPConnection, settings: CheckSettings, capture_end: float) -> AccountEntry:
    parts: list[str] = []
    connect = connect_outcome(conn, settings.tcp_timeout, capture_end)
    if conn.t_syn is None:
        parts.append("capture began mid-connection")
    elif connect.failure is None:
        parts.append(f"connected in {(connect.t - conn.t_syn) * 1000:.1f} ms")
    elif conn.refused:
        reset = next(r for r in conn.resets if r.by == "server")
        parts.append(f"refused (RST to SYN, TTL {reset.ttl})")
    else:
        parts.append(f"{connect.failure} after {conn.syn_count} SYN"
                     f"{'s' if conn.syn_count != 1 else ''}")
    tls = conn.tls
    if tls is not None and tls.client_hello is not None:
        hello = tls.client_hello
        text = f"TLS SNI {hello.sni or '(none)'}"
        if hello.alpn:
            text += f" ALPN {','.join(hello.alpn)}"
        if tls.server_hello is not None:
            text += f"; server {version_name(tls.server_hello.version)} {tls.server_hello.cipher_name}"
        outcome = handshake_outcome(conn, settings.tls_timeout, capture_end)
        text += "; handshake done" if outcome.failure is None else f"; handshake {outcome.failure}"
        if tls.certificates:
            text += f"; {len(tls.certificates)} certificate(s) seen"
        for seen in tls.alerts:
            name = seen.alert.name if seen.alert else "encrypted alert"
            text += f"; {seen.by} sent {name}"
        if tls.app_bytes_client or tls.app_bytes_server:
            text += f"; application data {tls.app_bytes_client}/{tls.app_bytes_server} bytes"
        parts.append(text)
    for exchange in conn.http:
        status = f"{exchange.status} {exchange.reason}" if exchange.status else "no response"
        parts.append(f"HTTP {exchange.method} {exchange.host or ''}{exchange.target} -> {status}")
    for reset in conn.resets:
        if reset.established or reset.by == "client":
            parts.append(_reset_text(conn, reset))
    if conn.t_fin_client is not None or conn.t_fin_server is not None:
        first = "client" if (conn.t_fin_server is None or (
            conn.t_fin_client is not None and conn.t_fin_client <= conn.t_fin_server)) else "server"
        parts.append(f"closed by the {first} (FIN)")
    if conn.gap:
        parts.append("bytes missing from the capture")
    return AccountEntry(
        t=conn.t_first,
        kind="tcp",
        summary=f"TCP {_endpoint(conn.client, conn.client_port)} > "
                f"{_endpoint(conn.server, conn.server_port)}: " + "; ".join(parts),
        record=conn,
        settings=settings,
    )


def _tcp_facts(conn: TCPConnection, settings: CheckSettings) -> dict[str, Any]:
    tls = conn.tls
    return {
        "client": conn.client, "client_port": conn.client_port, "server": conn.server,
        "server_port": conn.server_port, "syns": conn.syn_count,
        "t_syn": conn.t_syn, "t_synack": conn.t_synack, "t_last": conn.t_last,
        "connect_failure": connect_outcome(conn, settings.tcp_timeout, float("inf")).failure,
        "bytes_client": conn.bytes_client, "bytes_server": conn.bytes_server,
        "server_ttls": list(conn.server_ttls),
        "resets": [{"t": r.t, "by": r.by, "ttl": r.ttl, "ip_id": r.ip_id,
                    "established": r.established} for r in conn.resets],
        "sni": tls.client_hello.sni if tls and tls.client_hello else None,
        "http": [{"method": e.method, "host": e.host, "target": e.target,
                  "status": e.status} for e in conn.http],
    }


def _reset_text(conn: TCPConnection, reset: Reset) -> str:
    text = f"reset by the {reset.by} (RST TTL {reset.ttl}"
    if reset.by == "server" and conn.server_ttls:
        others = "/".join(str(t) for t in conn.server_ttls)
        text += f", the server's other packets TTL {others}"
        if reset.ttl not in conn.server_ttls:
            text += ": not from the server's host, likely injected"
    return text + ")"


def _udp(flow: UDPFlow, settings: CheckSettings) -> AccountEntry:
    text = (f"UDP {_endpoint(flow.client, flow.client_port)} > "
            f"{_endpoint(flow.server, flow.server_port)}: {flow.packets_client} packets "
            f"({flow.bytes_client} bytes) out, {flow.packets_server} ({flow.bytes_server} bytes) back")
    if flow.icmp is not None:
        text += f"; ICMP type {flow.icmp.type} code {flow.icmp.code} from {flow.icmp.sender}"
    return AccountEntry(
        t=flow.t_first, kind="udp", summary=text,
        record=flow, settings=settings,
    )


def _udp_facts(flow: UDPFlow, settings: CheckSettings) -> dict[str, Any]:
    return {"client": flow.client, "client_port": flow.client_port, "server": flow.server,
            "server_port": flow.server_port, "packets": [flow.packets_client, flow.packets_server],
            "bytes": [flow.bytes_client, flow.bytes_server]}


_FACTS: dict[str, Callable[[Any, CheckSettings], dict[str, Any]]] = {
    "dns": _dns_facts, "tcp": _tcp_facts, "udp": _udp_facts,
}
