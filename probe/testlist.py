"""Test lists: a YAML file in, a validated :class:`~probe.model.TestList` out.

The file is *composed* into YAML nodes, never constructed into Python
objects: every value keeps its position, so every complaint names
``FILE:LINE:COL``, and no tag in a hostile file can build anything. Only
the fields of the schema are read, by hand, node by node. The one
exception that leaves this module is :class:`TestListError`.

The format is documented in docs/testlists.md; keep the two in step.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.resources
import ipaddress
import re
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from probe.errors import InputError
from probe.model import (
    VPN_KINDS,
    Expectations,
    Feature,
    Target,
    TargetKind,
    TestList,
    VPNOptions,
)
from probe.vpn.registry import key_roles
from probe.wire import WireError, openvpn, wireguard

__all__ = [
    "CONTROL_PREFIX",
    "TestListError",
    "default_controls_path",
    "default_testlists",
    "example_testlists",
    "load_testlist",
]


class TestListError(InputError):
    """A problem in a test list: always ``FILE:LINE:COL: message``.

    Problems with the file as a whole (missing, unreadable, empty) point at 1:1.
    """

    __test__ = False  # a pytest-looking name, not a test class

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        super().__init__(message, file=path, line=line, column=column)
        self.path = path


# --------------------------------------------------------------------------
# Schema: which keys exist where. docs/testlists.md documents each one.

_LIST_KEYS = (
    "name", "version", "description", "updated", "controls", "prefixes", "keys", "features",
)
_LIST_REQUIRED = ("name", "version", "updated", "features")
_CONTROLS_FILE_KEYS = ("name", "description", "updated", "controls")
_CONTROLS_FILE_REQUIRED = ("name", "updated", "controls")
_FEATURE_KEYS = ("id", "name", "description", "source", "targets")
_FEATURE_REQUIRED = ("id", "name", "targets")
_TABLE_KEYS = ("cidrs", "asn", "checked", "source")
_KEY_ENTRY_KEYS = ("value", "checked", "source")

_TARGET_COMMON = ("kind", "id", "expect")
_TARGET_KEYS: dict[TargetKind, tuple[str, ...]] = {
    TargetKind.DNS: ("host", "rtype"),
    TargetKind.TCP: ("host", "port"),
    TargetKind.TLS: ("host", "port", "sni", "alpn"),
    TargetKind.HTTP: ("url", "method", "throughput"),
    TargetKind.HTTPS: ("url", "method", "throughput"),
    TargetKind.OPENVPN: ("host", "port", "transport", "control", "key", "key_direction", "auth"),
    TargetKind.WIREGUARD: ("host", "port", "key", "client_key"),
    TargetKind.IKEV2: ("host", "port"),
    TargetKind.PPTP: ("host", "port"),
    TargetKind.L2TP: ("host", "port"),
    TargetKind.SSTP: ("host", "port"),
}
# Each VPN protocol's usual port, and its transport (OpenVPN's is a choice).
_VPN_PORTS = {
    TargetKind.OPENVPN: 1194, TargetKind.WIREGUARD: 51820, TargetKind.IKEV2: 500,
    TargetKind.PPTP: 1723, TargetKind.L2TP: 1701, TargetKind.SSTP: 443,
}
_VPN_TRANSPORTS = {
    TargetKind.WIREGUARD: "udp", TargetKind.IKEV2: "udp", TargetKind.PPTP: "tcp",
    TargetKind.L2TP: "udp", TargetKind.SSTP: "tcp",
}
_OPENVPN_CONTROLS = ("tls-auth", "tls-crypt")
_OPENVPN_DIGESTS = ("sha1", "sha256", "sha512")
_TARGET_REQUIRED: dict[TargetKind, tuple[str, ...]] = {
    TargetKind.DNS: ("host",),
    TargetKind.TCP: ("host", "port"),
    TargetKind.TLS: ("host",),
    TargetKind.HTTP: ("url",),
    TargetKind.HTTPS: ("url",),
    TargetKind.OPENVPN: ("host",),
    TargetKind.WIREGUARD: ("host", "key"),
    TargetKind.IKEV2: ("host",),
    TargetKind.PPTP: ("host",),
    TargetKind.L2TP: ("host",),
    TargetKind.SSTP: ("host",),
}
# Every kind resolves its host first, so address expectations apply to all.
_ADDRESS_EXPECT = ("prefixes", "asn", "checked")
_EXPECT_KEYS: dict[TargetKind, tuple[str, ...]] = {
    TargetKind.DNS: _ADDRESS_EXPECT,
    TargetKind.TCP: _ADDRESS_EXPECT,
    TargetKind.TLS: (*_ADDRESS_EXPECT, "certificate_name"),
    TargetKind.HTTP: (*_ADDRESS_EXPECT, "status", "body_contains"),
    TargetKind.HTTPS: (*_ADDRESS_EXPECT, "certificate_name", "status", "body_contains"),
    **{kind: _ADDRESS_EXPECT for kind in VPN_KINDS},
}
_ANY_TARGET_KEY = frozenset(_TARGET_COMMON).union(*_TARGET_KEYS.values())
_ANY_EXPECT_KEY = frozenset().union(*_EXPECT_KEYS.values())

_KINDS = ", ".join(TargetKind)
_RTYPES = ("A", "AAAA", "CNAME", "HTTPS", "MX", "NS", "SOA", "SVCB", "TXT")
# Safe methods only (RFC 9110 section 9.2.1): probing must not change server state.
_METHODS = ("GET", "HEAD", "OPTIONS")
# 4-octet AS numbers (RFC 6793); AS 0 is reserved (RFC 7607).
_ASN_MAX = 2**32 - 1
_DEFAULT_PORTS = {TargetKind.HTTP: 80, TargetKind.HTTPS: 443, TargetKind.TLS: 443}
# Control target ids start with this, so they never clash with a feature's.
CONTROL_PREFIX = "control:"
# TargetResult.feature uses this name for control targets.
_RESERVED_FEATURE = "controls"

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TARGET_ID = re.compile(r"[!-~]+")  # printable ASCII, no spaces
# RFC 1123 section 2.1 labels; '_' too, as in SRV/TXT owner names (RFC 2181 section 11).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _TIMESTAMP = _YAML + "str", _YAML + "int", _YAML + "timestamp"
_SEQ, _MAP, _MERGE = _YAML + "seq", _YAML + "map", _YAML + "merge"
_BOOL = _YAML + "bool"
_TAG_WORDS = {
    _STR: "a string",
    _INT: "an integer",
    _YAML + "float": "a number",
    _BOOL: "true/false",
    _YAML + "null": "null",
    _TIMESTAMP: "a date",
}
# Only used for YAML 1.1 integer and boolean syntax (0x.., 1_000, 1:30; yes/on);
# never on other tags.
_SCALARS = SafeConstructor()


# --------------------------------------------------------------------------
# Public entry points


def load_testlist(path: str | Path) -> TestList:
    """Read, validate and resolve a test list file.

    Defaults are filled in, target ids derived, prefix tables resolved and
    the controls loaded (inline, from the named file, or the default
    controls file). Raises :class:`TestListError` for any problem.
    """
    shown = str(path)
    list_path = Path(path)
    doc = _Document(shown)
    data, root = doc.read(list_path)
    entries = doc.mapping(root, "a test list")
    doc.keys(root, entries, "a test list", _LIST_KEYS, _LIST_REQUIRED)

    name = doc.string(entries["name"].value, "'name'")
    version = doc.string(entries["version"].value, "'version'")
    description = _optional_string(doc, entries, "description") or ""
    updated = doc.date(entries["updated"].value, "'updated'")
    tables = _prefix_tables(doc, entries["prefixes"]) if "prefixes" in entries else {}
    keys = _keys(doc, entries["keys"]) if "keys" in entries else {}
    reader = _TargetReader(doc, tables, keys)
    features = _features(reader, entries["features"])
    if "controls" in entries:
        controls = _controls(reader, entries["controls"], list_path)
    else:
        controls = _controls_file(_default_controls(list_path, shown))
    return TestList(
        name=name,
        version=version,
        description=description,
        updated=updated,
        features=features,
        controls=controls,
        sha256=hashlib.sha256(data).hexdigest(),
        path=shown,
        keys=tuple((name, key.value) for name, key in keys.items() if key.value is not None),
    )


def default_controls_path() -> Path:
    """The shipped controls file: from the installed package, else the source tree."""
    try:
        resource = importlib.resources.files("probe.testlists") / "controls.yaml"
    except ModuleNotFoundError:
        resource = None
    if isinstance(resource, Path) and resource.is_file():
        return resource
    return Path(__file__).resolve().parent.parent / "testlists" / "controls.yaml"


def default_testlists() -> tuple[Path, ...]:
    """The shipped test lists (what ``probe run`` measures when given none), by name."""
    folder = default_controls_path().parent
    return tuple(sorted(p for p in folder.glob("*.yaml") if p.name != "controls.yaml"))


def example_testlists() -> tuple[Path, ...]:
    """The shipped templates (testlists/examples/): lists to copy for one's own
    servers, not run by default; the lab serves their names and checks them."""
    return tuple(sorted((default_controls_path().parent / "examples").glob("*.yaml")))


@dataclass(frozen=True, slots=True)
class PrefixOverrides:
    """Expected address prefixes given at run time, over the list's own.

    A lab serves every name from its own (documentation) ranges, and a
    user may hold fresher data than the list; neither should edit it.
    """

    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # For targets (and controls) that expect no prefixes at all.
    default: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tables or self.default)

    def describe(self) -> dict[str, object]:
        """For the report's config: the analyst must see what was swapped."""
        return {"tables": {k: list(v) for k, v in sorted(self.tables.items())},
                "default": list(self.default)}


def apply_prefix_overrides(testlist: TestList, overrides: PrefixOverrides) -> TestList:
    """The list with named tables replaced and the default filled in.

    Table names the list does not use are ignored: one lab run covers
    several lists, each with its own tables.
    """

    def fix(target: Target) -> Target:
        expect = target.expect
        if expect.prefix_table in overrides.tables:
            expect = replace(expect, prefixes=overrides.tables[expect.prefix_table])
        elif not expect.prefixes and overrides.default:
            expect = replace(expect, prefixes=overrides.default)
        return replace(target, expect=expect)

    features = tuple(
        replace(f, targets=tuple(fix(t) for t in f.targets)) for f in testlist.features
    )
    return replace(
        testlist, features=features, controls=tuple(fix(t) for t in testlist.controls)
    )


def parse_cidr_list(text: str, what: str) -> tuple[str, ...]:
    """``CIDR,CIDR,...`` from a command line; InputError (one line) if bad."""
    cidrs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            cidrs.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            raise InputError(f"{what}: bad CIDR prefix {item!r}: {exc}") from None
    if not cidrs:
        raise InputError(f"{what}: expected CIDR[,CIDR...]")
    return tuple(cidrs)


def parse_prefix_table(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME=CIDR,CIDR`` from ``--prefix-table``."""
    name, equals, cidrs = text.partition("=")
    if not equals or not name.strip():
        raise InputError(f"--prefix-table {text!r}: expected NAME=CIDR[,CIDR...]")
    return name.strip(), parse_cidr_list(cidrs, f"--prefix-table {name.strip()}")


def parse_vpn_key(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` or ``NAME=@FILE`` from ``--vpn-key``; InputError (one line) if bad."""
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name or not value:
        raise InputError(f"--vpn-key {text!r}: expected NAME=VALUE or NAME=@FILE")
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--vpn-key {name}: cannot read {value[1:]}: {exc}") from None
    return name, value.strip()


def apply_key_overrides(testlist: TestList, values: Mapping[str, str]) -> TestList:
    """The list with its named keys given (or replaced) at run time.

    Each value must parse as what the list's targets use it for; a name
    the list does not use is ignored (one run covers several lists).
    """
    used = _key_uses(testlist)
    for name, value in values.items():
        for what, parse in used.get(name, ()):
            try:
                parse(value)
            except WireError as exc:
                raise InputError(f"--vpn-key {name}: not {what}: {exc}") from None
    keys = dict(testlist.keys) | {n: v for n, v in values.items() if n in used}
    return replace(testlist, keys=tuple(sorted(keys.items())))


def _key_uses(testlist: TestList) -> dict[str, list[tuple[str, Callable[[str], bytes]]]]:
    uses: dict[str, list[tuple[str, Callable[[str], bytes]]]] = {}
    for feature in testlist.features:
        for target in feature.targets:
            for name, role in key_roles(target):
                if name is not None:
                    uses.setdefault(name, []).append((role.value, role.parse))
    return uses


# --------------------------------------------------------------------------
# Reading nodes with positions


@dataclass(frozen=True, slots=True)
class _Document:
    """One YAML file: turns nodes into checked values or positioned errors."""

    path: str  # as shown in messages

    def error(self, node: Node, message: str) -> TestListError:
        mark = node.start_mark
        return TestListError(self.path, mark.line + 1, mark.column + 1, message)

    def read(self, path: Path) -> tuple[bytes, Node]:
        """The file's bytes (for the digest) and its YAML root node."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise TestListError(self.path, 1, 1, f"cannot read file: {reason}") from None
        return data, self.parse(data)

    def parse(self, data: bytes) -> Node:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _position(data[: exc.start].decode("utf-8"))
            raise TestListError(self.path, line, column, "not UTF-8 text") from None
        text = text.removeprefix("\ufeff")
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except ReaderError as exc:
            line, column = _position(text[: exc.position])
            message = f"YAML error: character U+{exc.character:04X} is not allowed"
            raise TestListError(self.path, line, column, message) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            # PyYAML's own wording reads "<context>, <problem>" ("while parsing
            # a flow sequence, expected ',' or ']' ...").
            detail = ", ".join(part for part in (exc.context, exc.problem) if part)
            raise TestListError(self.path, *where, f"YAML error: {detail}") from None
        except yaml.YAMLError as exc:
            raise TestListError(self.path, 1, 1, f"YAML error: {exc}") from None
        except RecursionError:
            # The composer recurses once per nesting level.
            raise TestListError(self.path, 1, 1, "YAML error: nesting too deep") from None
        if root is None:
            raise TestListError(self.path, 1, 1, "the file is empty")
        return root

    def mapping(self, node: Node, what: str) -> dict[str, _Entry]:
        """A mapping's entries by key; keys must be unique strings."""
        if not (isinstance(node, MappingNode) and node.tag == _MAP):
            raise self.error(node, f"{what} must be a mapping, not {_describe(node)}")
        entries: dict[str, _Entry] = {}
        for key, value in node.value:
            if key.tag == _MERGE:
                raise self.error(key, "merge keys (<<) are not supported")
            if not (isinstance(key, ScalarNode) and key.tag == _STR):
                raise self.error(key, f"keys must be strings, not {_describe(key)}")
            if key.value in entries:
                first = _at(entries[key.value].key)
                raise self.error(key, f"duplicate key {key.value!r} (first at {first})")
            entries[key.value] = _Entry(key, value)
        return entries

    def keys(
        self,
        node: Node,
        entries: dict[str, _Entry],
        what: str,
        allowed: tuple[str, ...],
        required: tuple[str, ...] = (),
        known: Collection[str] = (),
    ) -> None:
        """Reject unknown keys, then missing ones.

        ``known`` are keys valid elsewhere in the same kind of mapping (for
        another target kind): they "do not apply" rather than being unknown.
        """
        listing = ", ".join(allowed)
        for name, entry in entries.items():
            if name not in allowed:
                problem = "does not apply to" if name in known else "is not a key of"
                raise self.error(entry.key, f"{name!r} {problem} {what} (allowed: {listing})")
        for name in required:
            if name not in entries:
                raise self.error(node, f"{what} is missing the required key {name!r}")

    def sequence(self, node: Node, what: str) -> list[Node]:
        """A non-empty list's items."""
        if not (isinstance(node, SequenceNode) and node.tag == _SEQ):
            raise self.error(node, f"{what} must be a list, not {_describe(node)}")
        if not node.value:
            raise self.error(node, f"{what} must not be empty")
        return list(node.value)

    def string(self, node: Node, what: str, *, empty: bool = False) -> str:
        if not (isinstance(node, ScalarNode) and node.tag == _STR):
            hint = " (put it in quotes)" if isinstance(node, ScalarNode) else ""
            raise self.error(node, f"{what} must be a string, not {_describe(node)}{hint}")
        if not empty and not node.value.strip():
            raise self.error(node, f"{what} must not be empty")
        return node.value

    def integer(self, node: Node, what: str, low: int, high: int) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            raise self.error(node, f"{what} must be an integer, not {_describe(node)}")
        try:
            value = _SCALARS.construct_yaml_int(node)
        except ValueError:  # beyond Python's int-from-text digit limit
            value = high + 1
        if not low <= value <= high:
            raise self.error(
                node, f"{what} must be between {low} and {high}, not {_quote(node.value)}"
            )
        return value

    def boolean(self, node: Node, what: str) -> bool:
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            raise self.error(node, f"{what} must be true or false, not {_describe(node)}")
        return bool(_SCALARS.construct_yaml_bool(node))

    def date(self, node: Node, what: str) -> str:
        """A calendar date written YYYY-MM-DD, returned as that text."""
        text = node.value if isinstance(node, ScalarNode) and node.tag in (_STR, _TIMESTAMP) else ""
        if _DATE.fullmatch(text):
            try:
                return datetime.date.fromisoformat(text).isoformat()
            except ValueError:
                pass
        raise self.error(node, f"{what} must be a date written YYYY-MM-DD, not {_show(node)}")

    def slug(self, node: Node, what: str) -> str:
        value = self.string(node, what)
        if not _SLUG.fullmatch(value):
            raise self.error(
                node, f"{what} {_quote(value)} must be lower-case letters, digits, '-' and '_'"
            )
        return value

    def host(self, node: Node, what: str, value: str | None = None) -> str:
        """A host name (lower-cased); ``value`` when it came out of a URL."""
        value = self.string(node, what) if value is None else value
        if _is_ip_literal(value):
            raise self.error(node, f"{what}: use a host name, not an IP literal ({_quote(value)})")
        name = value.lower()
        if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
            raise self.error(node, f"{what}: {_quote(value)} is not a valid host name")
        return name


@dataclass(frozen=True, slots=True)
class _Entry:
    key: Node
    value: Node


@dataclass(frozen=True, slots=True)
class _PrefixTable:
    cidrs: tuple[str, ...]
    asn: int | None
    checked: str | None
    name: str | None = None


# --------------------------------------------------------------------------
# Targets


class _TargetReader:
    """Reads targets of one document, keeping their ids unique within it."""

    __slots__ = ("doc", "keys", "seen", "tables")

    def __init__(
        self, doc: _Document, tables: dict[str, _PrefixTable], keys: dict[str, _Key] | None = None
    ) -> None:
        self.doc = doc
        self.tables = tables
        self.keys = keys or {}
        self.seen: dict[str, Node] = {}

    def targets(self, node: Node, what: str, *, control: bool = False) -> tuple[Target, ...]:
        return tuple(self.target(item, control=control) for item in self.doc.sequence(node, what))

    def target(self, node: Node, *, control: bool) -> Target:
        doc = self.doc
        entries = doc.mapping(node, "a target")
        if "kind" not in entries:
            raise doc.error(node, f"a target is missing the required key 'kind' (one of: {_KINDS})")
        kind_node = entries["kind"].value
        kind_name = doc.string(kind_node, "'kind'")
        try:
            kind = TargetKind(kind_name)
        except ValueError:
            message = f"unknown target kind {_quote(kind_name)} (allowed: {_KINDS})"
            raise doc.error(kind_node, message) from None
        what = f"a {kind} target"
        allowed = _TARGET_COMMON + _TARGET_KEYS[kind]
        doc.keys(node, entries, what, allowed, _TARGET_REQUIRED[kind], _ANY_TARGET_KEY)
        values = {name: entry.value for name, entry in entries.items()}
        expect = self.expect(values["expect"], kind) if "expect" in values else Expectations()

        if kind in (TargetKind.HTTP, TargetKind.HTTPS):
            url, host, port = self.url(values["url"], kind)
            method = self.choice(values, "method", _METHODS, "GET")
            throughput = "throughput" in values and doc.boolean(values["throughput"], "'throughput'")
            target = Target(
                id=url, kind=kind, host=host, port=port, url=url, method=method,
                throughput=throughput, expect=expect,
            )
        else:
            host = doc.host(values["host"], "'host'")
            if kind is TargetKind.DNS:
                rtype = self.choice(values, "rtype", _RTYPES, "A", upper=True)
                target_id = f"dns://{host}/{rtype}"
                target = Target(id=target_id, kind=kind, host=host, rtype=rtype, expect=expect)
            elif kind is TargetKind.TCP:
                port = doc.integer(values["port"], "'port'", 1, 65535)
                target_id = f"tcp://{host}:{port}"
                target = Target(id=target_id, kind=kind, host=host, port=port, expect=expect)
            elif kind is TargetKind.TLS:
                target = self.tls(values, host, expect)
            else:
                target = self.vpn(kind, values, host, expect)

        if "id" in values:
            target = replace(target, id=self.explicit_id(values["id"], control))
        if control:
            target = replace(target, id=CONTROL_PREFIX + target.id)
        self.claim(target.id, values.get("id", node))
        return target

    def tls(self, values: dict[str, Node], host: str, expect: Expectations) -> Target:
        doc = self.doc
        port = doc.integer(values["port"], "'port'", 1, 65535) if "port" in values else 443
        # RFC 6066 section 3: the server_name is a host name, never an address.
        sni = doc.host(values["sni"], "'sni'") if "sni" in values else host
        alpn = tuple(self.alpn(values["alpn"])) if "alpn" in values else ()
        target_id = f"tls://{host}:{port}" + (f"?sni={sni}" if sni != host else "")
        return Target(
            id=target_id,
            kind=TargetKind.TLS,
            host=host,
            port=port,
            sni=sni,
            alpn=alpn,
            expect=expect,
        )

    def vpn(
        self, kind: TargetKind, values: dict[str, Node], host: str, expect: Expectations
    ) -> Target:
        doc = self.doc
        port = _VPN_PORTS[kind]
        if "port" in values:
            port = doc.integer(values["port"], "'port'", 1, 65535)
        transport = _VPN_TRANSPORTS.get(kind) or self.choice(
            values, "transport", ("udp", "tcp"), "udp"
        )
        options = VPNOptions()
        if kind is TargetKind.WIREGUARD:
            public = self.key(values["key"], "a WireGuard public key", wireguard.parse_key)
            client = None
            if "client_key" in values:
                client = self.key(values["client_key"], "a WireGuard private key", wireguard.parse_key)
            options = VPNOptions(key=public, client_key=client)
        elif kind is TargetKind.OPENVPN:
            options = self.openvpn(values)
        # OpenVPN runs on either transport, so the transport is part of its id.
        suffix = f"/{transport}" if kind is TargetKind.OPENVPN else ""
        return Target(
            id=f"{kind}://{host}:{port}{suffix}", kind=kind, host=host, port=port,
            transport=transport, vpn=options, expect=expect,
        )

    def openvpn(self, values: dict[str, Node]) -> VPNOptions:
        doc = self.doc
        control = self.choice(values, "control", _OPENVPN_CONTROLS, "") or None
        for name in ("key", "key_direction", "auth"):
            if name in values and control is None:
                message = f"{name!r} needs 'control: tls-auth' or 'control: tls-crypt'"
                raise doc.error(values[name], message)
        if control == "tls-crypt":
            for name in ("key_direction", "auth"):
                if name in values:
                    message = f"{name!r} is fixed by tls-crypt; it applies to tls-auth"
                    raise doc.error(values[name], message)
        key = None
        if "key" in values:
            key = self.key(values["key"], "an OpenVPN static key", openvpn.parse_static_key)
        direction = None
        if "key_direction" in values:
            direction = doc.integer(values["key_direction"], "'key_direction'", 0, 1)
        digest = self.choice(values, "auth", _OPENVPN_DIGESTS, "sha1")
        return VPNOptions(key=key, control=control, key_direction=direction, digest=digest)

    def key(self, node: Node, what: str, parse: Callable[[str], bytes]) -> str:
        """A name from the list's ``keys`` table whose value parses as ``what``."""
        name = self.doc.string(node, "a key name")
        entry = self.keys.get(name)
        if entry is None:
            defined = ", ".join(sorted(self.keys)) or "none"
            raise self.doc.error(node, f"unknown key {_quote(name)} (defined in 'keys': {defined})")
        if entry.value is not None:
            try:
                parse(entry.value)
            except WireError as exc:
                raise self.doc.error(entry.node, f"key {name!r} is not {what}: {exc}") from None
        return name

    def alpn(self, node: Node) -> list[str]:
        protocols = []
        for item in self.doc.sequence(node, "'alpn'"):
            name = self.doc.string(item, "an 'alpn' entry")
            # RFC 7301 section 3.1: protocol names are 1..255 bytes.
            if not (name.isascii() and name.isprintable() and len(name) <= 255):
                message = f"ALPN protocol {_quote(name)} must be printable ASCII, 1..255 bytes"
                raise self.doc.error(item, message)
            protocols.append(name)
        return protocols

    def url(self, node: Node, kind: TargetKind) -> tuple[str, str, int]:
        doc = self.doc
        url = doc.string(node, "'url'")
        if any(char.isspace() or not char.isprintable() for char in url):
            message = f"'url' {_quote(url)} must not contain spaces or control characters"
            raise doc.error(node, message)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise doc.error(node, f"'url' {_quote(url)} is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise doc.error(node, f"'url' {_quote(url)} must start with http:// or https://")
        if parts.scheme != kind:
            raise doc.error(node, f"a {kind} target needs a {kind}:// URL, not {_quote(url)}")
        if parts.username is not None or parts.password is not None:
            raise doc.error(node, "'url' must not carry credentials (user:password@)")
        if not parts.hostname:
            raise doc.error(node, f"'url' {_quote(url)} has no host")
        host = doc.host(node, "'url'", parts.hostname)
        if port == 0:
            raise doc.error(node, f"'url' {_quote(url)}: port must be between 1 and 65535")
        return url, host, port or _DEFAULT_PORTS[kind]

    def choice(
        self,
        values: dict[str, Node],
        key: str,
        allowed: tuple[str, ...],
        default: str,
        *,
        upper: bool = False,
    ) -> str:
        if key not in values:
            return default
        value = self.doc.string(values[key], f"'{key}'")
        value = value.upper() if upper else value
        if value not in allowed:
            message = f"'{key}' must be one of {', '.join(allowed)}, not {_quote(value)}"
            raise self.doc.error(values[key], message)
        return value

    def explicit_id(self, node: Node, control: bool) -> str:
        value = self.doc.string(node, "'id'")
        if not _TARGET_ID.fullmatch(value):
            message = f"'id' {_quote(value)} must be printable ASCII without spaces"
            raise self.doc.error(node, message)
        if not control and value.startswith(CONTROL_PREFIX):
            message = f"'id' {_quote(value)}: the prefix {CONTROL_PREFIX!r} is kept for controls"
            raise self.doc.error(node, message)
        return value

    def claim(self, target_id: str, where: Node) -> None:
        if target_id in self.seen:
            raise self.doc.error(
                where,
                f"duplicate target id {_quote(target_id)} (first at {_at(self.seen[target_id])}); "
                "give one of them an explicit 'id'",
            )
        self.seen[target_id] = where

    def expect(self, node: Node, kind: TargetKind) -> Expectations:
        doc = self.doc
        entries = doc.mapping(node, "'expect'")
        what = f"the 'expect' of a {kind} target"
        doc.keys(node, entries, what, _EXPECT_KEYS[kind], known=_ANY_EXPECT_KEY)
        values = {name: entry.value for name, entry in entries.items()}
        table = _PrefixTable(cidrs=(), asn=None, checked=None)
        if "prefixes" in values:
            prefixes = values["prefixes"]
            if isinstance(prefixes, ScalarNode) and prefixes.tag == _STR:
                table = self.table(prefixes)
            else:
                table = _PrefixTable(_cidrs(doc, prefixes, "'prefixes'"), None, None)
        status = ()
        if "status" in values:
            status = tuple(
                doc.integer(item, "an HTTP status", 100, 599)
                for item in doc.sequence(values["status"], "'status'")
            )
        # A table's AS number and date stand in for the target's own.
        return Expectations(
            prefixes=table.cidrs,
            asn=doc.integer(values["asn"], "'asn'", 1, _ASN_MAX) if "asn" in values else table.asn,
            certificate_name=self.certificate_name(values["certificate_name"])
            if "certificate_name" in values
            else None,
            status=status,
            body_contains=doc.string(values["body_contains"], "'body_contains'")
            if "body_contains" in values
            else None,
            checked=doc.date(values["checked"], "'checked'")
            if "checked" in values
            else table.checked,
            prefix_table=table.name,
        )

    def table(self, node: ScalarNode) -> _PrefixTable:
        if node.value not in self.tables:
            defined = ", ".join(self.tables) or "none"
            message = f"unknown prefix table {_quote(node.value)} (defined: {defined})"
            raise self.doc.error(node, message)
        return self.tables[node.value]

    def certificate_name(self, node: Node) -> str:
        value = self.doc.string(node, "'certificate_name'")
        # One leading wildcard label, as in a certificate's subjectAltName (RFC 6125 section 6.4.3).
        wildcard = value.startswith("*.")
        name = self.doc.host(node, "'certificate_name'", value.removeprefix("*."))
        return "*." + name if wildcard else name


# --------------------------------------------------------------------------
# List sections


def _features(reader: _TargetReader, entry: _Entry) -> tuple[Feature, ...]:
    doc = reader.doc
    features: list[Feature] = []
    seen: dict[str, Node] = {}
    for node in doc.sequence(entry.value, "'features'"):
        entries = doc.mapping(node, "a feature")
        doc.keys(node, entries, "a feature", _FEATURE_KEYS, _FEATURE_REQUIRED)
        id_node = entries["id"].value
        feature_id = doc.slug(id_node, "feature 'id'")
        if feature_id == _RESERVED_FEATURE:
            message = f"feature id {_RESERVED_FEATURE!r} is reserved for the controls"
            raise doc.error(id_node, message)
        if feature_id in seen:
            raise doc.error(
                id_node, f"duplicate feature id {feature_id!r} (first at {_at(seen[feature_id])})"
            )
        seen[feature_id] = id_node
        features.append(
            Feature(
                id=feature_id,
                name=doc.string(entries["name"].value, "feature 'name'"),
                description=_optional_string(doc, entries, "description") or "",
                targets=reader.targets(entries["targets"].value, "'targets'"),
                source=_optional_string(doc, entries, "source"),
            )
        )
    return tuple(features)


def _prefix_tables(doc: _Document, entry: _Entry) -> dict[str, _PrefixTable]:
    tables: dict[str, _PrefixTable] = {}
    for name, table in doc.mapping(entry.value, "'prefixes'").items():
        doc.slug(table.key, "a prefix table name")
        entries = doc.mapping(table.value, f"prefix table {name!r}")
        doc.keys(table.value, entries, f"prefix table {name!r}", _TABLE_KEYS, ("cidrs",))
        _optional_string(doc, entries, "source")
        tables[name] = _PrefixTable(
            cidrs=_cidrs(doc, entries["cidrs"].value, "'cidrs'"),
            asn=doc.integer(entries["asn"].value, "'asn'", 1, _ASN_MAX)
            if "asn" in entries
            else None,
            checked=doc.date(entries["checked"].value, "'checked'")
            if "checked" in entries
            else None,
            name=name,
        )
    return tables


@dataclass(frozen=True, slots=True)
class _Key:
    value: str | None  # None: declared, to be given at run time (--vpn-key)
    node: Node  # where the value (or the entry) is written, for errors about it


def _keys(doc: _Document, entry: _Entry) -> dict[str, _Key]:
    """``keys:``: named keys for VPN handshakes, each ``{value, source, checked}``.

    A key without ``value`` is declared for the user to give at run time:
    a secret (a WireGuard client's private key) never belongs in a list.
    """
    keys: dict[str, _Key] = {}
    for name, key in doc.mapping(entry.value, "'keys'").items():
        doc.slug(key.key, "a key name")
        entries = doc.mapping(key.value, f"key {name!r}")
        doc.keys(key.value, entries, f"key {name!r}", _KEY_ENTRY_KEYS, ())
        _optional_string(doc, entries, "source")
        if "checked" in entries:
            doc.date(entries["checked"].value, "'checked'")
        if "value" in entries:
            value = entries["value"].value
            keys[name] = _Key(doc.string(value, "a key's 'value'").strip(), value)
        else:
            keys[name] = _Key(None, key.value)
    return keys


def _cidrs(doc: _Document, node: Node, what: str) -> tuple[str, ...]:
    cidrs = []
    for item in doc.sequence(node, what):
        text = doc.string(item, "a CIDR prefix")
        try:
            if "/" not in text:
                raise ValueError("write it as ADDRESS/LENGTH")
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise doc.error(item, f"bad CIDR prefix {_quote(text)}: {exc}") from None
        cidrs.append(str(network))
    return tuple(cidrs)


def _controls(reader: _TargetReader, entry: _Entry, list_path: Path) -> tuple[Target, ...]:
    """``controls:`` is either an inline list of targets or a file name."""
    doc, node = reader.doc, entry.value
    if isinstance(node, ScalarNode) and node.tag == _STR:
        relative = doc.string(node, "'controls'")
        path = list_path.parent / relative
        # A NUL byte would make the file system call raise ValueError.
        if "\0" in relative or not path.is_file():
            raise doc.error(node, f"controls file {str(path)!r} does not exist or is not a file")
        return _controls_file(path)
    if isinstance(node, SequenceNode):
        return reader.targets(node, "'controls'", control=True)
    message = f"'controls' must be a file name or a list of targets, not {_describe(node)}"
    raise doc.error(node, message)


def _controls_file(path: Path) -> tuple[Target, ...]:
    doc = _Document(str(path))
    _, root = doc.read(path)
    entries = doc.mapping(root, "a controls file")
    doc.keys(root, entries, "a controls file", _CONTROLS_FILE_KEYS, _CONTROLS_FILE_REQUIRED)
    doc.string(entries["name"].value, "'name'")
    _optional_string(doc, entries, "description")
    doc.date(entries["updated"].value, "'updated'")
    return _TargetReader(doc, {}).targets(entries["controls"].value, "'controls'", control=True)


def _default_controls(list_path: Path, shown: str) -> Path:
    """A controls.yaml next to the list wins, so a local copy can swap names."""
    candidates = (list_path.parent / "controls.yaml", default_controls_path())
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " and ".join(str(candidate) for candidate in candidates)
    raise TestListError(shown, 1, 1, f"no 'controls' key and no default controls file ({looked})")


def _optional_string(doc: _Document, entries: dict[str, _Entry], key: str) -> str | None:
    return doc.string(entries[key].value, f"{key!r}", empty=True) if key in entries else None


# --------------------------------------------------------------------------
# Small helpers


def _is_ip_literal(value: str) -> bool:
    """An address in any form a resolver would take as one, not as a name."""
    try:
        ipaddress.ip_address(value.removeprefix("[").removesuffix("]"))
        return True
    except ValueError:
        pass
    try:
        # The C library also reads "127.1", "0x7f.1" or "2130706433" as IPv4.
        socket.inet_aton(value)
        return True
    except (OSError, ValueError):
        pass
    # An all-digit top label never names a host (RFC 3696 section 2).
    last = value.rsplit(".", 1)[-1]
    return last.isascii() and last.isdigit()


def _describe(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list" if node.tag == _SEQ else f"a list tagged {node.tag}"
    if isinstance(node, MappingNode):
        return "a mapping" if node.tag == _MAP else f"a mapping tagged {node.tag}"
    return _TAG_WORDS.get(node.tag, f"a value tagged {node.tag}")


def _at(node: Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _show(node: Node) -> str:
    return _quote(node.value) if isinstance(node, ScalarNode) else _describe(node)


def _quote(value: str, limit: int = 60) -> str:
    """A value as it goes into a message: quoted, escaped, kept short."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _position(before: str) -> tuple[int, int]:
    """1-based line and column of the character after ``before``."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
