"""Resolver strings (``--resolver``, test lists) and what they denote.

* ``system``: the first ``nameserver`` of /etc/resolv.conf, over UDP
  port 53 (one server, no search list: we measure a name, not a stub);
* ``udp://ADDR[:PORT]`` and ``tcp://ADDR[:PORT]`` (ADDR an IP literal,
  IPv6 in brackets when a port follows: ``udp://[2001:db8::53]:5353``);
* ``https://HOST[:PORT]/PATH[@ADDR]``: DNS over HTTPS (RFC 8484, POST of
  application/dns-message). HOST is the name in the certificate and the
  Host header; when HOST is not an IP literal, ``@ADDR`` says where to
  connect, because resolving the resolver's own name would need another
  resolver: ``https://dns.example/dns-query@198.51.100.53``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from probe.errors import InputError
from probe.wire.url import is_ip_literal, url_host

RESOLV_CONF = "/etc/resolv.conf"
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9.])?")


class ResolverError(InputError):
    """A resolver string does not parse; the message is one line."""


@dataclass(frozen=True, slots=True)
class ResolverSpec:
    protocol: str  # "system", "udp", "tcp" or "https"
    address: str | None = None  # IP literal to connect to; None for system
    port: int = 53
    host: str | None = None  # https: certificate name and Host header
    path: str = "/dns-query"  # https only
    resolv_conf: str = RESOLV_CONF  # system only

    @property
    def text(self) -> str:
        """The canonical spelling, as recorded in observations."""
        if self.protocol == "system":
            return "system"
        assert self.address is not None
        if self.protocol == "https":
            assert self.host is not None
            port = "" if self.port == 443 else f":{self.port}"
            bootstrap = "" if self.host == self.address else f"@{url_host(self.address)}"
            return f"https://{url_host(self.host)}{port}{self.path}{bootstrap}"
        return f"{self.protocol}://{url_host(self.address)}:{self.port}"


def parse_resolver(text: str) -> ResolverSpec:
    """Parse a resolver string; ResolverError (a ValueError) if malformed."""
    try:
        return _parse_resolver(text.strip())
    except ResolverError as exc:
        raise ResolverError(f"invalid resolver {text!r}: {exc}") from None


def _parse_resolver(text: str) -> ResolverSpec:
    if text == "system":
        return ResolverSpec("system")
    protocol, separator, rest = text.partition("://")
    if not separator or protocol not in ("udp", "tcp", "https"):
        raise ResolverError(
            "expected system, udp://ADDR[:PORT], tcp://ADDR[:PORT] "
            "or https://HOST[:PORT]/PATH[@ADDR]"
        )
    if protocol != "https":
        host, port = _host_port(rest, 53)
        return ResolverSpec(protocol, _literal(host), port)
    authority, slash, path = rest.partition("/")
    if not slash:
        raise ResolverError("a DoH URL needs a path, e.g. /dns-query")
    path = "/" + path
    bootstrap: str | None = None
    if "@" in path:
        path, _, bootstrap = path.rpartition("@")
    host, port = _host_port(authority, 443)
    if is_ip_literal(host):
        host = _literal(host)
    elif not _HOSTNAME.fullmatch(host):
        raise ResolverError(f"{host!r} is not a host name")
    if bootstrap is not None:
        address = _literal(bootstrap.removeprefix("[").removesuffix("]"))
    elif is_ip_literal(host):
        address = host
    else:
        raise ResolverError(f"add @ADDR to say where {host} is (it is not resolved)")
    return ResolverSpec("https", address, port, host=host, path=path)


def _host_port(text: str, default: int) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ResolverError("expected [IPv6 address] or [IPv6 address]:PORT")
        return host, _port(rest[1:]) if rest else default
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, default  # no port, or a bare IPv6 literal


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ResolverError(f"port {text!r} is not 1-65535")
    return int(text)


def _literal(text: str) -> str:
    if not is_ip_literal(text):
        raise ResolverError(f"{text!r} is not an IP address")
    return str(ipaddress.ip_address(text))
