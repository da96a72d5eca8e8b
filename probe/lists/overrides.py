"""Test lists changed at run time, without editing them: expected address
prefixes (``--prefix-table``, ``--default-prefixes``) and VPN keys (``--vpn-key``).

Each value is parsed here; a bad one is an :class:`~probe.errors.InputError`
of one line naming its option.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from probe.errors import InputError
from probe.model import Target, TestList
from probe.vpn.registry import key_roles
from probe.wire import WireError

__all__ = [
    "PrefixOverrides",
    "apply_key_overrides",
    "apply_prefix_overrides",
    "parse_cidr_list",
    "parse_prefix_table",
    "parse_vpn_key",
]


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
