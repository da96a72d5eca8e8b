"""Test lists: a YAML file in, a validated :class:`~probe.model.TestList` out.

The file is read through :class:`probe.yamldoc.Document` (composed into
positioned nodes, never constructed), against the tables of
:mod:`probe.lists.schema`. Only the fields of the schema are read, by
hand, node by node. The one exception that leaves this module is
:class:`TestListError`.

The format is documented in docs/testlists.md; keep the two in step.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from yaml.nodes import Node, ScalarNode, SequenceNode

from probe.errors import InputError
from probe.lists.schema import (
    ANY_EXPECT_KEY,
    ANY_TARGET_KEY,
    ASN_MAX,
    CONTROL_PREFIX,
    CONTROLS_FILE_KEYS,
    CONTROLS_FILE_REQUIRED,
    FEATURE_KEYS,
    FEATURE_REQUIRED,
    KEY_ENTRY_KEYS,
    KINDS,
    LIST_KEYS,
    LIST_REQUIRED,
    METHODS,
    OPENVPN_CONTROLS,
    OPENVPN_DIGESTS,
    RESERVED_FEATURE,
    RTYPES,
    TABLE_KEYS,
    TARGET_COMMON,
    TARGET_ID,
    KindSchema,
)
from probe.lists.shipped import default_controls_path
from probe.model import Expectations, Feature, Target, TargetKind, TestList, VPNOptions
from probe.wire import WireError, openvpn, wireguard
from probe.yamldoc import Document, Entry, describe, is_string, location, quote

__all__ = ["TestListError", "load_testlist"]


class TestListError(InputError):
    """A problem in a test list: always ``FILE:LINE:COL: message``.

    Problems with the file as a whole (missing, unreadable, empty) point at 1:1.
    """

    __test__ = False  # a pytest-looking name, not a test class

    @property
    def path(self) -> str:
        """The file the problem is in (the list, or the controls file it names)."""
        return self.file or ""


_KIND_NAMES = ", ".join(TargetKind)


def load_testlist(path: str | Path) -> TestList:
    """Read, validate and resolve a test list file.

    Defaults are filled in, target ids derived, prefix tables resolved and
    the controls loaded (inline, from the named file, or the default
    controls file). Raises :class:`TestListError` for any problem.
    """
    shown = str(path)
    list_path = Path(path)
    doc = Document(shown, TestListError)
    data, root = doc.read(list_path)
    entries = doc.mapping(root, "a test list")
    doc.keys(root, entries, "a test list", LIST_KEYS, LIST_REQUIRED)

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
        controls = _controls_file(_default_controls(list_path, doc))
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


# --------------------------------------------------------------------------
# Targets


class _TargetReader:
    """Reads targets of one document, keeping their ids unique within it."""

    __slots__ = ("doc", "keys", "seen", "tables")

    def __init__(
        self, doc: Document, tables: dict[str, _PrefixTable], keys: dict[str, _Key] | None = None
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
            raise doc.error(node, f"a target is missing the required key 'kind' (one of: {_KIND_NAMES})")
        kind_node = entries["kind"].value
        kind_name = doc.string(kind_node, "'kind'")
        try:
            kind = TargetKind(kind_name)
        except ValueError:
            message = f"unknown target kind {quote(kind_name)} (allowed: {_KIND_NAMES})"
            raise doc.error(kind_node, message) from None
        row = KINDS[kind]
        what = f"a {kind} target"
        doc.keys(node, entries, what, TARGET_COMMON + row.keys, row.required, ANY_TARGET_KEY)
        values = {name: entry.value for name, entry in entries.items()}
        expect = self.expect(values["expect"], kind) if "expect" in values else Expectations()

        if kind in (TargetKind.HTTP, TargetKind.HTTPS):
            url, host, port = self.url(values["url"], kind, row)
            method = self.choice(values, "method", METHODS, "GET")
            throughput = "throughput" in values and doc.boolean(values["throughput"], "'throughput'")
            target = Target(
                id=url, kind=kind, host=host, port=port, url=url, method=method,
                throughput=throughput, expect=expect,
            )
        else:
            host = doc.host(values["host"], "'host'")
            if kind is TargetKind.DNS:
                rtype = self.choice(values, "rtype", RTYPES, "A", upper=True)
                target_id = f"dns://{host}/{rtype}"
                target = Target(id=target_id, kind=kind, host=host, rtype=rtype, expect=expect)
            elif kind is TargetKind.TCP:
                port = doc.integer(values["port"], "'port'", 1, 65535)
                target_id = f"tcp://{host}:{port}"
                target = Target(id=target_id, kind=kind, host=host, port=port, expect=expect)
            elif kind is TargetKind.TLS:
                target = self.tls(values, host, expect, row)
            else:
                target = self.vpn(kind, values, host, expect, row)

        if "id" in values:
            target = replace(target, id=self.explicit_id(values["id"], control))
        if control:
            target = replace(target, id=CONTROL_PREFIX + target.id)
        self.claim(target.id, values.get("id", node))
        return target

    def tls(
        self, values: dict[str, Node], host: str, expect: Expectations, row: KindSchema
    ) -> Target:
        doc = self.doc
        port = doc.integer(values["port"], "'port'", 1, 65535) if "port" in values else row.port
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
        self,
        kind: TargetKind,
        values: dict[str, Node],
        host: str,
        expect: Expectations,
        row: KindSchema,
    ) -> Target:
        doc = self.doc
        port = row.port
        if "port" in values:
            port = doc.integer(values["port"], "'port'", 1, 65535)
        # Only a kind with several transports takes the 'transport' key.
        transport = self.choice(values, "transport", row.transports, row.transports[0])
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
        control = self.choice(values, "control", OPENVPN_CONTROLS, "") or None
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
        digest = self.choice(values, "auth", OPENVPN_DIGESTS, "sha1")
        return VPNOptions(key=key, control=control, key_direction=direction, digest=digest)

    def key(self, node: Node, what: str, parse: Callable[[str], bytes]) -> str:
        """A name from the list's ``keys`` table whose value parses as ``what``."""
        name = self.doc.string(node, "a key name")
        entry = self.keys.get(name)
        if entry is None:
            defined = ", ".join(sorted(self.keys)) or "none"
            raise self.doc.error(node, f"unknown key {quote(name)} (defined in 'keys': {defined})")
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
                message = f"ALPN protocol {quote(name)} must be printable ASCII, 1..255 bytes"
                raise self.doc.error(item, message)
            protocols.append(name)
        return protocols

    def url(self, node: Node, kind: TargetKind, row: KindSchema) -> tuple[str, str, int]:
        doc = self.doc
        url = doc.string(node, "'url'")
        if any(char.isspace() or not char.isprintable() for char in url):
            message = f"'url' {quote(url)} must not contain spaces or control characters"
            raise doc.error(node, message)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise doc.error(node, f"'url' {quote(url)} is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise doc.error(node, f"'url' {quote(url)} must start with http:// or https://")
        if parts.scheme != kind:
            raise doc.error(node, f"a {kind} target needs a {kind}:// URL, not {quote(url)}")
        if parts.username is not None or parts.password is not None:
            raise doc.error(node, "'url' must not carry credentials (user:password@)")
        if not parts.hostname:
            raise doc.error(node, f"'url' {quote(url)} has no host")
        host = doc.host(node, "'url'", parts.hostname)
        if port == 0:
            raise doc.error(node, f"'url' {quote(url)}: port must be between 1 and 65535")
        return url, host, port or row.port

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
            message = f"'{key}' must be one of {', '.join(allowed)}, not {quote(value)}"
            raise self.doc.error(values[key], message)
        return value

    def explicit_id(self, node: Node, control: bool) -> str:
        value = self.doc.string(node, "'id'")
        if not TARGET_ID.fullmatch(value):
            message = f"'id' {quote(value)} must be printable ASCII without spaces"
            raise self.doc.error(node, message)
        if not control and value.startswith(CONTROL_PREFIX):
            message = f"'id' {quote(value)}: the prefix {CONTROL_PREFIX!r} is kept for controls"
            raise self.doc.error(node, message)
        return value

    def claim(self, target_id: str, where: Node) -> None:
        if target_id in self.seen:
            raise self.doc.error(
                where,
                f"duplicate target id {quote(target_id)} (first at {location(self.seen[target_id])}); "
                "give one of them an explicit 'id'",
            )
        self.seen[target_id] = where

    def expect(self, node: Node, kind: TargetKind) -> Expectations:
        doc = self.doc
        entries = doc.mapping(node, "'expect'")
        what = f"the 'expect' of a {kind} target"
        doc.keys(node, entries, what, KINDS[kind].expect, known=ANY_EXPECT_KEY)
        values = {name: entry.value for name, entry in entries.items()}
        table = _PrefixTable(cidrs=(), asn=None, checked=None)
        if "prefixes" in values:
            prefixes = values["prefixes"]
            if is_string(prefixes):
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
            asn=doc.integer(values["asn"], "'asn'", 1, ASN_MAX) if "asn" in values else table.asn,
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
            message = f"unknown prefix table {quote(node.value)} (defined: {defined})"
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


def _features(reader: _TargetReader, entry: Entry) -> tuple[Feature, ...]:
    doc = reader.doc
    features: list[Feature] = []
    seen: dict[str, Node] = {}
    for node in doc.sequence(entry.value, "'features'"):
        entries = doc.mapping(node, "a feature")
        doc.keys(node, entries, "a feature", FEATURE_KEYS, FEATURE_REQUIRED)
        id_node = entries["id"].value
        feature_id = doc.slug(id_node, "feature 'id'")
        if feature_id == RESERVED_FEATURE:
            message = f"feature id {RESERVED_FEATURE!r} is reserved for the controls"
            raise doc.error(id_node, message)
        if feature_id in seen:
            raise doc.error(
                id_node, f"duplicate feature id {feature_id!r} (first at {location(seen[feature_id])})"
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


@dataclass(frozen=True, slots=True)
class _PrefixTable:
    cidrs: tuple[str, ...]
    asn: int | None
    checked: str | None
    name: str | None = None


def _prefix_tables(doc: Document, entry: Entry) -> dict[str, _PrefixTable]:
    tables: dict[str, _PrefixTable] = {}
    for name, table in doc.mapping(entry.value, "'prefixes'").items():
        doc.slug(table.key, "a prefix table name")
        entries = doc.mapping(table.value, f"prefix table {name!r}")
        doc.keys(table.value, entries, f"prefix table {name!r}", TABLE_KEYS, ("cidrs",))
        _optional_string(doc, entries, "source")
        tables[name] = _PrefixTable(
            cidrs=_cidrs(doc, entries["cidrs"].value, "'cidrs'"),
            asn=doc.integer(entries["asn"].value, "'asn'", 1, ASN_MAX)
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


def _keys(doc: Document, entry: Entry) -> dict[str, _Key]:
    """``keys:``: named keys for VPN handshakes, each ``{value, source, checked}``.

    A key without ``value`` is declared for the user to give at run time:
    a secret (a WireGuard client's private key) never belongs in a list.
    """
    keys: dict[str, _Key] = {}
    for name, key in doc.mapping(entry.value, "'keys'").items():
        doc.slug(key.key, "a key name")
        entries = doc.mapping(key.value, f"key {name!r}")
        doc.keys(key.value, entries, f"key {name!r}", KEY_ENTRY_KEYS, ())
        _optional_string(doc, entries, "source")
        if "checked" in entries:
            doc.date(entries["checked"].value, "'checked'")
        if "value" in entries:
            value = entries["value"].value
            keys[name] = _Key(doc.string(value, "a key's 'value'").strip(), value)
        else:
            keys[name] = _Key(None, key.value)
    return keys


def _cidrs(doc: Document, node: Node, what: str) -> tuple[str, ...]:
    cidrs = []
    for item in doc.sequence(node, what):
        text = doc.string(item, "a CIDR prefix")
        try:
            if "/" not in text:
                raise ValueError("write it as ADDRESS/LENGTH")
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise doc.error(item, f"bad CIDR prefix {quote(text)}: {exc}") from None
        cidrs.append(str(network))
    return tuple(cidrs)


def _controls(reader: _TargetReader, entry: Entry, list_path: Path) -> tuple[Target, ...]:
    """``controls:`` is either an inline list of targets or a file name."""
    doc, node = reader.doc, entry.value
    if is_string(node):
        relative = doc.string(node, "'controls'")
        path = list_path.parent / relative
        # A NUL byte would make the file system call raise ValueError.
        if "\0" in relative or not path.is_file():
            raise doc.error(node, f"controls file {str(path)!r} does not exist or is not a file")
        return _controls_file(path)
    if isinstance(node, SequenceNode):
        return reader.targets(node, "'controls'", control=True)
    message = f"'controls' must be a file name or a list of targets, not {describe(node)}"
    raise doc.error(node, message)


def _controls_file(path: Path) -> tuple[Target, ...]:
    doc = Document(str(path), TestListError)
    _, root = doc.read(path)
    entries = doc.mapping(root, "a controls file")
    doc.keys(root, entries, "a controls file", CONTROLS_FILE_KEYS, CONTROLS_FILE_REQUIRED)
    doc.string(entries["name"].value, "'name'")
    _optional_string(doc, entries, "description")
    doc.date(entries["updated"].value, "'updated'")
    return _TargetReader(doc, {}).targets(entries["controls"].value, "'controls'", control=True)


def _default_controls(list_path: Path, doc: Document) -> Path:
    """A controls.yaml next to the list wins, so a local copy can swap names."""
    candidates = (list_path.parent / "controls.yaml", default_controls_path())
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " and ".join(str(candidate) for candidate in candidates)
    raise doc.file_error(f"no 'controls' key and no default controls file ({looked})")


def _optional_string(doc: Document, entries: dict[str, Entry], key: str) -> str | None:
    return doc.string(entries[key].value, f"{key!r}", empty=True) if key in entries else None
