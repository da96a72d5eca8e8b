"""The ``censor:`` section of a lab scenario: schema, parser, and its way back to plain data.

Schema (every behaviour takes a list of rules; a single mapping stands for
a list of one, ``true`` for one rule with every default, ``false`` for
none; every key not marked required is optional)::

    censor:
      seed: 7                       # fixes the dice of every `probability` (default: random)

      dns_inject:                   # forged answers sent the moment a query passes
        - names: [www.facebook.com, "*.facebook.com"]    # required; "*.x" = any name under x
          answers: [198.51.100.66, [203.0.113.77, "2001:db8:66::1"]]
                                    # required; one forged response per entry, each
                                    # carrying the entry's addresses of the queried family
          probability: 1.0          # chance that a matching query is answered (default 1)
          ttl: 60                   # of the forged records (default 60)

      blackhole:                    # drop (nftables) every packet towards these
        - addresses: [203.0.113.30, "2001:db8:5::30", 203.0.113.64/28]
          names: [mmg.whatsapp.net] # lab names, resolved through the lab's zone
          ports: [443]              # default: every port
          protocol: tcp             # tcp | udp | any (default any)
                                    # addresses, names or ports: at least one

      partial:                      # some addresses of a name dropped, the others not
        - names: [e1.whatsapp.net]  # required
          drop: 1                   # required; the first N IPv4 and the first N IPv6
                                    # addresses of each name, in zone order
          ports: [443, 5222]

      sni_reset:                    # RST both ways when a ClientHello names a listed server
        - sni: [mmg.whatsapp.net, "*.cdn.whatsapp.net"]  # required
          ports: [443]              # default [443]
          addresses: [...]          # only towards these servers (default: any)
          probability: 0.75         # chance that a trigger is acted on (default 1)
          residual: 90              # then drop (client, server, port) for 90 s (default 0)

      http_host:                    # act on an HTTP/1.x request's Host
        - hosts: [www.facebook.com] # required
          action: blockpage         # rst | drop | blockpage (HTTP 403, title BLOCKPAGE_TITLE)
          ports: [80]               # default [80]
          addresses: [...]
          probability: 1.0
          residual: 0

      throttle:                     # htb rate limit, both directions
        - rate: 256kbit             # required; tc units: bit kbit mbit gbit bps kbps mbps gbps
          addresses: [...]          # with names/ports: only that traffic (default: all)
          names: [...]
          ports: [...]

      loss:                         # random loss of forwarded packets, both directions
        - percent: 10               # required, 1..100
          addresses: [...]          # with names/ports: only that traffic (default: all)
          names: [...]
          ports: [...]

      udp_drop:                     # drop UDP towards these ports
        - ports: [1194, 51820]      # ports or except_ports: one of them, required
          except_ports: [53]        # every port but these
          addresses: [...]
          names: [...]

      openvpn_fingerprint:          # an OpenVPN client's first packet, by opcode and shape:
        - ports: [1194, 443]        #   TCP reset both ways, UDP dropped (default: every port)
          addresses: [...]          # only towards these servers (default: any)
          names: [...]
          protocol: any             # tcp | udp | any (default any)
          probability: 1.0
          residual: 0               # then drop (client, server, protocol, port) for N s

      gre_drop: true                # drop IP protocol 47 (PPTP's data), both ways
      esp_drop:                     # drop IP protocol 50 (IPsec ESP), both ways
        - addresses: [...]          # only to and from these (default: all)
          names: [...]

      redirect:                     # DNAT: e.g. towards an interception server
        - addresses: [203.0.113.20] # addresses and/or names: required
          names: [web.whatsapp.com]
          ports: [443]              # required
          to: [203.0.113.99, "2001:db8:5::99"]  # required; one address per family
          to_port: 8443             # default: the same port

Addresses (except forged DNS answers) must lie in the lab's ranges. Errors
are one line, ``WHERE[:LINE:COL]: censor.KEY: message``; line and column
appear when the section is given as a YAML node (as composed by
``yaml.compose``), not when it is plain data. The node is read through
:mod:`probe.yamldoc`, the reader of every YAML input: it becomes plain data
(:meth:`~probe.yamldoc.Document.plain`) checked like any other, and a
complaint about a key is placed at the node that key leads to
(:func:`~probe.yamldoc.locate`).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from yaml.nodes import Node

from probe.errors import InputError
from probe.yamldoc import Document, locate

__all__ = [
    "BLOCKPAGE_TITLE",
    "LAB_NETWORKS",
    "Blackhole",
    "CensorConfig",
    "CensorConfigError",
    "DNSInject",
    "HTTPHost",
    "HostAction",
    "Loss",
    "OpenVPNFingerprint",
    "Partial",
    "ProtocolDrop",
    "Redirect",
    "SNIReset",
    "Selector",
    "Throttle",
    "UDPDrop",
    "name_matches",
    "parse_censor",
    "to_data",
]

# The only addresses a lab may use (DEVELOPERS.md): documentation ranges.
LAB_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# The host's own network may sit here: never name it, not even in a forged answer.
_FORBIDDEN = ipaddress.ip_network("192.0.2.0/24")
# The title of the forged block page, so tests and the classifier can spot it.
BLOCKPAGE_TITLE = "Access denied by the lab censor"

_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
_RATE = re.compile(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)")
_RATE_FACTOR = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}


class CensorConfigError(InputError):
    """One line: ``WHERE[:LINE:COL]: censor.KEY: message``."""


class HostAction(enum.StrEnum):
    RST = "rst"
    DROP = "drop"
    BLOCKPAGE = "blockpage"


@dataclass(frozen=True, slots=True)
class Selector:
    """Which packets a rule touches: an empty part means "any"."""

    addresses: tuple[str, ...] = ()  # addresses or networks, normalised
    names: tuple[str, ...] = ()  # lab names, resolved through the zone when rules are built
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DNSInject:
    names: tuple[str, ...]
    answers: tuple[tuple[str, ...], ...]  # one forged response per entry
    probability: float = 1.0
    ttl: int = 60


@dataclass(frozen=True, slots=True)
class Blackhole:
    selector: Selector
    protocol: str = "any"  # tcp | udp | any


@dataclass(frozen=True, slots=True)
class Partial:
    names: tuple[str, ...]
    drop: int
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SNIReset:
    sni: tuple[str, ...]
    ports: tuple[int, ...] = (443,)
    addresses: tuple[str, ...] = ()
    probability: float = 1.0
    residual: float = 0.0


@dataclass(frozen=True, slots=True)
class HTTPHost:
    hosts: tuple[str, ...]
    action: HostAction = HostAction.RST
    ports: tuple[int, ...] = (80,)
    addresses: tuple[str, ...] = ()
    probability: float = 1.0
    residual: float = 0.0


@dataclass(frozen=True, slots=True)
class Throttle:
    rate: int  # bits per second
    selector: Selector = Selector()


@dataclass(frozen=True, slots=True)
class Loss:
    percent: int
    selector: Selector = Selector()


@dataclass(frozen=True, slots=True)
class UDPDrop:
    selector: Selector  # ports set, or else except_ports
    except_ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenVPNFingerprint:
    selector: Selector = Selector()  # the servers and ports watched (empty: all)
    protocol: str = "any"  # tcp | udp | any
    probability: float = 1.0
    residual: float = 0.0


@dataclass(frozen=True, slots=True)
class ProtocolDrop:
    """An IP protocol (GRE, ESP) dropped both ways; ports mean nothing to it."""

    selector: Selector = Selector()


@dataclass(frozen=True, slots=True)
class Redirect:
    selector: Selector  # ports always set
    to: tuple[str, ...]  # at most one address per family
    to_port: int | None = None


@dataclass(frozen=True, slots=True)
class CensorConfig:
    dns_inject: tuple[DNSInject, ...] = ()
    blackhole: tuple[Blackhole, ...] = ()
    partial: tuple[Partial, ...] = ()
    sni_reset: tuple[SNIReset, ...] = ()
    http_host: tuple[HTTPHost, ...] = ()
    throttle: tuple[Throttle, ...] = ()
    loss: tuple[Loss, ...] = ()
    udp_drop: tuple[UDPDrop, ...] = ()
    redirect: tuple[Redirect, ...] = ()
    openvpn_fingerprint: tuple[OpenVPNFingerprint, ...] = ()
    gre_drop: tuple[ProtocolDrop, ...] = ()
    esp_drop: tuple[ProtocolDrop, ...] = ()
    seed: int | None = None

    @property
    def needs_daemon(self) -> bool:
        """Whether a userspace inspector must watch the traffic (residual rides on triggers)."""
        return bool(self.dns_inject or self.sni_reset or self.http_host or self.openvpn_fingerprint)


def name_matches(name: str, patterns: Sequence[str]) -> bool:
    """``x`` matches itself only; ``*.x`` matches every name under x (not x itself)."""
    name = name.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]):
                return True
        elif name == pattern:
            return True
    return False


# --------------------------------------------------------------------------
# Parsing

Path = tuple[str | int, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Context:
    where: str
    node: Node | None  # the section as written, when it came from a YAML file

    def error(self, path: Path, message: str) -> CensorConfigError:
        line = column = None
        if self.node is not None:
            # A behaviour given as one mapping is read as a list of one:
            # locate() stays on it for index 0, so its keys are found too.
            mark = locate(self.node, path).start_mark
            line, column = mark.line + 1, mark.column + 1
        key = "censor" + "".join(_key_part(p) for p in path)
        return CensorConfigError(f"{key}: {message}", file=self.where, line=line, column=column)


def _key_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return (
        f".{part}" if part.isprintable() else f".{part!r}"
    )  # a key with a newline stays on one line


def parse_censor(data: Mapping[str, Any] | Node | None, where: str) -> CensorConfig:
    """The scenario's ``censor:`` value (plain data or a YAML node) as a :class:`CensorConfig`.

    ``where`` names the scenario file; it starts every error message.
    None or an empty mapping is a censor that does nothing.
    """
    node = data if isinstance(data, Node) else None
    if node is not None:
        data = Document(where, CensorConfigError).plain(node, "censor")
    ctx = _Context(where, node)
    if data is None:
        return CensorConfig()
    if not isinstance(data, Mapping):
        raise ctx.error((), "must be a mapping of behaviours")
    unknown = [k for k in data if k not in _BEHAVIOURS and k != "seed"]
    if unknown:
        known = ", ".join(["seed", *_BEHAVIOURS])
        raise ctx.error((str(unknown[0]),), f"unknown behaviour (known: {known})")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ctx.error(("seed",), "must be an integer")
    rules = {
        key: tuple(
            parser(_Rule(ctx, (key, i), entry, keys))
            for i, entry in enumerate(_entries(ctx, key, data.get(key)))
        )
        for key, (parser, keys) in _BEHAVIOURS.items()
    }
    return CensorConfig(seed=seed, **rules)


def _entries(ctx: _Context, key: str, value: Any) -> list[Any]:
    if value is None or value is False:
        return []
    if value is True:
        return [{}]
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return value
    raise ctx.error((key,), "must be a list of rules (or one rule as a mapping, or true)")


class _Rule:
    """One rule's mapping, read key by key; every complaint names the key."""

    def __init__(self, ctx: _Context, path: Path, data: Any, keys: Sequence[str]) -> None:
        if not isinstance(data, Mapping):
            raise ctx.error(path, "must be a mapping")
        for key in data:
            if key not in keys:
                raise ctx.error((*path, str(key)), f"unknown key (known: {', '.join(keys)})")
        self.ctx, self.path, self.data = ctx, path, data

    def get(self, key: str, convert: Callable[[Path, Any], T], default: T) -> T:
        if self.data.get(key) is None:
            return default
        return convert((*self.path, key), self.data[key])

    def require(self, key: str, convert: Callable[[Path, Any], T]) -> T:
        if self.data.get(key) is None:
            raise self.ctx.error((*self.path, key), "is required")
        return convert((*self.path, key), self.data[key])

    def fail(self, key: str, message: str) -> CensorConfigError:
        return self.ctx.error((*self.path, key), message)

    # Converters: (path, value) -> typed value.

    def _list(self, path: Path, value: Any, item: Callable[[Path, Any], T]) -> tuple[T, ...]:
        items = value if isinstance(value, list) else [value]
        converted = tuple(item((*path, i), v) for i, v in enumerate(items))
        if not converted:
            raise self.ctx.error(path, "must not be empty")
        return converted

    def _string(self, path: Path, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.ctx.error(path, f"must be a non-empty string, not {value!r}")
        return value

    def name(self, path: Path, value: Any, *, wildcard: bool = False) -> str:
        text = self._string(path, value).lower().rstrip(".")
        bare = text[2:] if wildcard and text.startswith("*.") else text
        if not _NAME.fullmatch(bare):
            hint = ' (or "*.name")' if wildcard else ""
            raise self.ctx.error(path, f"{value!r} is not a host name{hint}")
        return text

    def names(self, path: Path, value: Any) -> tuple[str, ...]:
        return self._list(path, value, self.name)

    def patterns(self, path: Path, value: Any) -> tuple[str, ...]:
        return self._list(path, value, lambda p, v: self.name(p, v, wildcard=True))

    def lab_address(self, path: Path, value: Any) -> str:
        network = self._network(path, value)
        inside = (
            network.network_address in lab and network.broadcast_address in lab
            for lab in LAB_NETWORKS
        )
        if not any(inside):
            labs = ", ".join(str(n) for n in LAB_NETWORKS)
            raise self.ctx.error(path, f"{value} is outside the lab's ranges ({labs})")
        return str(network.network_address) if _is_host(network) else str(network)

    def lab_addresses(self, path: Path, value: Any) -> tuple[str, ...]:
        return self._list(path, value, self.lab_address)

    def any_address(self, path: Path, value: Any) -> str:
        network = self._network(path, value)
        if not _is_host(network) or network.network_address in _FORBIDDEN:
            raise self.ctx.error(path, f"{value!r} is not a usable address")
        return str(network.network_address)

    def _network(self, path: Path, value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            return ipaddress.ip_network(self._string(path, str(value)), strict=True)
        except ValueError:
            raise self.ctx.error(path, f"{value!r} is not an IP address or network") from None

    def port(self, path: Path, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            raise self.ctx.error(path, f"{value!r} is not a port (1-65535)")
        return value

    def ports(self, path: Path, value: Any) -> tuple[int, ...]:
        return self._list(path, value, self.port)

    def probability(self, path: Path, value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise self.ctx.error(path, f"{value!r} is not a probability (0 to 1)")
        return float(value)

    def seconds(self, path: Path, value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 3600:
            raise self.ctx.error(path, f"{value!r} is not a number of seconds (0 to 3600)")
        return float(value)

    def integer(self, low: int, high: int) -> Callable[[Path, Any], int]:
        def convert(path: Path, value: Any) -> int:
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise self.ctx.error(path, f"{value!r} is not an integer from {low} to {high}")
            return value

        return convert

    def choice(self, options: Sequence[str]) -> Callable[[Path, Any], str]:
        def convert(path: Path, value: Any) -> str:
            if value not in options:
                raise self.ctx.error(path, f"{value!r} is not one of {', '.join(options)}")
            return str(value)

        return convert

    def rate(self, path: Path, value: Any) -> int:
        match = _RATE.fullmatch(str(value).strip().lower())
        if not match:
            raise self.ctx.error(path, f"{value!r} is not a rate like 256kbit or 1mbps")
        number, unit = float(match[1]), match[2]
        if unit.endswith("bps"):  # tc's bytes per second
            bits = number * 8 * _RATE_FACTOR[unit[:-3] + "bit"]
        else:
            bits = number * _RATE_FACTOR[unit]
        if bits < 8000:
            raise self.ctx.error(path, f"{value!r} is below 8kbit")
        return int(bits)

    def selector(self, *, ports: bool = True) -> Selector:
        return Selector(
            addresses=self.get("addresses", self.lab_addresses, ()),
            names=self.get("names", self.names, ()),
            ports=self.get("ports", self.ports, ()) if ports else (),
        )


def _is_host(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return network.num_addresses == 1


# One parser per behaviour, with the keys it accepts (the schema above).


def _dns_inject(rule: _Rule) -> DNSInject:
    def answer(path: Path, value: Any) -> tuple[str, ...]:
        return rule._list(path, value, rule.any_address)

    return DNSInject(
        names=rule.require("names", rule.patterns),
        answers=rule.require("answers", lambda p, v: rule._list(p, v, answer)),
        probability=rule.get("probability", rule.probability, 1.0),
        ttl=rule.get("ttl", rule.integer(0, 2**31 - 1), 60),
    )


def _blackhole(rule: _Rule) -> Blackhole:
    selector = rule.selector()
    if selector == Selector():  # a slip of the pen would cut the lab off
        raise rule.fail("addresses", "a blackhole needs addresses, names or ports")
    return Blackhole(selector, rule.get("protocol", rule.choice(("tcp", "udp", "any")), "any"))


def _partial(rule: _Rule) -> Partial:
    return Partial(
        names=rule.require("names", rule.names),
        drop=rule.require("drop", rule.integer(1, 64)),
        ports=rule.get("ports", rule.ports, ()),
    )


def _sni_reset(rule: _Rule) -> SNIReset:
    return SNIReset(
        sni=rule.require("sni", rule.patterns),
        ports=rule.get("ports", rule.ports, (443,)),
        addresses=rule.get("addresses", rule.lab_addresses, ()),
        probability=rule.get("probability", rule.probability, 1.0),
        residual=rule.get("residual", rule.seconds, 0.0),
    )


def _http_host(rule: _Rule) -> HTTPHost:
    action = rule.get("action", rule.choice(tuple(HostAction)), HostAction.RST.value)
    return HTTPHost(
        hosts=rule.require("hosts", rule.patterns),
        action=HostAction(action),
        ports=rule.get("ports", rule.ports, (80,)),
        addresses=rule.get("addresses", rule.lab_addresses, ()),
        probability=rule.get("probability", rule.probability, 1.0),
        residual=rule.get("residual", rule.seconds, 0.0),
    )


def _throttle(rule: _Rule) -> Throttle:
    return Throttle(rule.require("rate", rule.rate), rule.selector())


def _loss(rule: _Rule) -> Loss:
    return Loss(rule.require("percent", rule.integer(1, 100)), rule.selector())


def _udp_drop(rule: _Rule) -> UDPDrop:
    except_ports: tuple[int, ...] = rule.get("except_ports", rule.ports, ())
    if except_ports and rule.data.get("ports") is not None:
        raise rule.fail("except_ports", "give ports or except_ports, not both")
    if not except_ports:
        rule.require("ports", rule.ports)
    return UDPDrop(rule.selector(), except_ports)


def _openvpn_fingerprint(rule: _Rule) -> OpenVPNFingerprint:
    return OpenVPNFingerprint(
        rule.selector(),
        rule.get("protocol", rule.choice(("tcp", "udp", "any")), "any"),
        rule.get("probability", rule.probability, 1.0),
        rule.get("residual", rule.seconds, 0.0),
    )


def _protocol_drop(rule: _Rule) -> ProtocolDrop:
    return ProtocolDrop(rule.selector(ports=False))


def _redirect(rule: _Rule) -> Redirect:
    selector = rule.selector()
    if not (selector.addresses or selector.names):
        raise rule.fail("addresses", "a redirect needs addresses or names")
    rule.require("ports", rule.ports)
    to = rule.require("to", rule.lab_addresses)
    if len({ipaddress.ip_address(a).version for a in to}) != len(to):
        raise rule.fail("to", "give at most one address per IP version")
    if any("/" in a for a in to):
        raise rule.fail("to", "must be addresses, not networks")
    return Redirect(selector, to, rule.get("to_port", rule.port, None))


_BEHAVIOURS: dict[str, tuple[Callable[[_Rule], Any], tuple[str, ...]]] = {
    "dns_inject": (_dns_inject, ("names", "answers", "probability", "ttl")),
    "blackhole": (_blackhole, ("addresses", "names", "ports", "protocol")),
    "partial": (_partial, ("names", "drop", "ports")),
    "sni_reset": (_sni_reset, ("sni", "ports", "addresses", "probability", "residual")),
    "http_host": (
        _http_host,
        ("hosts", "action", "ports", "addresses", "probability", "residual"),
    ),
    "throttle": (_throttle, ("rate", "addresses", "names", "ports")),
    "loss": (_loss, ("percent", "addresses", "names", "ports")),
    "udp_drop": (_udp_drop, ("ports", "except_ports", "addresses", "names")),
    "redirect": (_redirect, ("addresses", "names", "ports", "to", "to_port")),
    "openvpn_fingerprint": (
        _openvpn_fingerprint,
        ("ports", "addresses", "names", "protocol", "probability", "residual"),
    ),
    "gre_drop": (_protocol_drop, ("addresses", "names")),
    "esp_drop": (_protocol_drop, ("addresses", "names")),
}


# --------------------------------------------------------------------------
# Back to plain data (what the daemon reads from its config file)


def to_data(config: CensorConfig) -> dict[str, Any]:
    """Plain data that :func:`parse_censor` turns back into an equal config."""
    data: dict[str, Any] = {} if config.seed is None else {"seed": config.seed}
    for key in _BEHAVIOURS:
        rules = getattr(config, key)
        if rules:
            data[key] = [_rule_data(rule) for rule in rules]
    return data


def _rule_data(rule: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(rule):
        value = getattr(rule, f.name)
        if isinstance(value, Selector):
            out.update(_rule_data(value))
        elif f.name == "rate":
            out[f.name] = f"{value}bit"
        elif isinstance(value, enum.Enum):
            out[f.name] = value.value
        elif isinstance(value, tuple):
            out[f.name] = [list(v) if isinstance(v, tuple) else v for v in value]
        else:
            out[f.name] = value
    return {k: v for k, v in out.items() if v is not None and v != []}
