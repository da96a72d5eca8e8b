"""The test list schema: which keys exist where, and one row per target kind.

docs/testlists.md documents each key; keep the two in step. The loader
(:mod:`probe.lists.loader`) reads a file against these tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from probe.model import TargetKind
from probe.vpn.registry import PROTOCOLS

__all__ = [
    "ANY_EXPECT_KEY",
    "ANY_TARGET_KEY",
    "ASN_MAX",
    "CONTROLS_FILE_KEYS",
    "CONTROLS_FILE_REQUIRED",
    "CONTROL_PREFIX",
    "FEATURE_KEYS",
    "FEATURE_REQUIRED",
    "KEY_ENTRY_KEYS",
    "KINDS",
    "LIST_KEYS",
    "LIST_REQUIRED",
    "METHODS",
    "OPENVPN_CONTROLS",
    "OPENVPN_DIGESTS",
    "RESERVED_FEATURE",
    "RTYPES",
    "TABLE_KEYS",
    "TARGET_COMMON",
    "TARGET_ID",
    "KindSchema",
]

LIST_KEYS = (
    "name", "version", "description", "updated", "controls", "prefixes", "keys", "features",
)
LIST_REQUIRED = ("name", "version", "updated", "features")
CONTROLS_FILE_KEYS = ("name", "description", "updated", "controls")
CONTROLS_FILE_REQUIRED = ("name", "updated", "controls")
FEATURE_KEYS = ("id", "name", "description", "source", "targets")
FEATURE_REQUIRED = ("id", "name", "targets")
TABLE_KEYS = ("cidrs", "asn", "checked", "source")
KEY_ENTRY_KEYS = ("value", "checked", "source")
TARGET_COMMON = ("kind", "id", "expect")


@dataclass(frozen=True, slots=True)
class KindSchema:
    """What a target of one kind is written with."""

    keys: tuple[str, ...]  # besides TARGET_COMMON, in the order error messages list them
    required: tuple[str, ...]
    expect: tuple[str, ...]  # the keys its 'expect' takes
    # The port when none is given (a URL's scheme gives it for http/https);
    # None: the kind has no port, or must be given one.
    port: int | None = None
    # A VPN protocol's transports, the default first; a choice ('transport'
    # key) only where there are several. Empty: not a VPN kind.
    transports: tuple[str, ...] = ()


# Every kind resolves its host first, so address expectations apply to all.
_ADDRESS = ("prefixes", "asn", "checked")
_HOST_PORT = ("host", "port")


def _vpn(kind: TargetKind, keys: tuple[str, ...], required: tuple[str, ...]) -> KindSchema:
    protocol = PROTOCOLS[kind]
    return KindSchema(keys, required, _ADDRESS, port=protocol.port, transports=tuple(protocol.conversations))


KINDS: Mapping[TargetKind, KindSchema] = {
    TargetKind.DNS: KindSchema(("host", "rtype"), ("host",), _ADDRESS),
    TargetKind.TCP: KindSchema(_HOST_PORT, _HOST_PORT, _ADDRESS),
    TargetKind.TLS: KindSchema(
        ("host", "port", "sni", "alpn"), ("host",), (*_ADDRESS, "certificate_name"), port=443
    ),
    TargetKind.HTTP: KindSchema(
        ("url", "method", "throughput"), ("url",), (*_ADDRESS, "status", "body_contains"), port=80
    ),
    TargetKind.HTTPS: KindSchema(
        ("url", "method", "throughput"), ("url",),
        (*_ADDRESS, "certificate_name", "status", "body_contains"), port=443,
    ),
    # VPN protocols: their usual port and transports come from the registry.
    TargetKind.OPENVPN: _vpn(
        TargetKind.OPENVPN,
        ("host", "port", "transport", "control", "key", "key_direction", "auth"), ("host",),
    ),
    TargetKind.WIREGUARD: _vpn(TargetKind.WIREGUARD, ("host", "port", "key", "client_key"), ("host", "key")),
    TargetKind.IKEV2: _vpn(TargetKind.IKEV2, _HOST_PORT, ("host",)),
    TargetKind.PPTP: _vpn(TargetKind.PPTP, _HOST_PORT, ("host",)),
    TargetKind.L2TP: _vpn(TargetKind.L2TP, _HOST_PORT, ("host",)),
    TargetKind.SSTP: _vpn(TargetKind.SSTP, _HOST_PORT, ("host",)),
}
# Keys of some kind: in a target of another they "do not apply" (not unknown).
ANY_TARGET_KEY = frozenset(TARGET_COMMON).union(*(row.keys for row in KINDS.values()))
ANY_EXPECT_KEY = frozenset().union(*(row.expect for row in KINDS.values()))

RTYPES = ("A", "AAAA", "CNAME", "HTTPS", "MX", "NS", "SOA", "SVCB", "TXT")
# Safe methods only (RFC 9110 section 9.2.1): probing must not change server state.
METHODS = ("GET", "HEAD", "OPTIONS")
OPENVPN_CONTROLS = ("tls-auth", "tls-crypt")
OPENVPN_DIGESTS = ("sha1", "sha256", "sha512")
# 4-octet AS numbers (RFC 6793); AS 0 is reserved (RFC 7607).
ASN_MAX = 2**32 - 1
# Control target ids start with this, so they never clash with a feature's.
CONTROL_PREFIX = "control:"
# TargetResult.feature uses this name for control targets.
RESERVED_FEATURE = "controls"
TARGET_ID = re.compile(r"[!-~]+")  # printable ASCII, no spaces
