"""probe.lists.schema: one row per target kind, in step with the docs."""

from __future__ import annotations

import re

from list_samples import SHIPPED

from probe.lists.schema import ANY_EXPECT_KEY, ANY_TARGET_KEY, KINDS, TARGET_COMMON
from probe.model import VPN_KINDS, TargetKind

DOCS = SHIPPED.parent / "docs"


def test_every_kind_has_one_row() -> None:
    assert list(KINDS) == list(TargetKind)


def test_a_row_requires_only_keys_it_takes() -> None:
    for kind, row in KINDS.items():
        assert set(row.required) <= set(row.keys), kind
        assert not set(row.keys) & set(TARGET_COMMON), kind
        assert {"prefixes", "asn", "checked"} <= set(row.expect), kind


def test_the_vpn_rows_are_those_with_transports_and_only_a_choice_takes_the_key() -> None:
    assert {kind for kind, row in KINDS.items() if row.transports} == VPN_KINDS
    for kind, row in KINDS.items():
        assert ("transport" in row.keys) == (len(row.transports) > 1), kind
        assert row.port is not None or kind in (TargetKind.DNS, TargetKind.TCP), kind


def test_keys_of_any_kind_are_the_union_of_the_rows() -> None:
    assert ANY_TARGET_KEY == {*TARGET_COMMON, *(key for row in KINDS.values() for key in row.keys)}
    assert ANY_EXPECT_KEY == {key for row in KINDS.values() for key in row.expect}


def _table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """The first table after ``heading``: first column (unquoted) -> the other cells."""
    section = text.split(heading, 1)[1]
    table = "|" + section.split("\n\n|", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([a-z_0-9]+)` \|(.*)\|$", table, re.MULTILINE)
    return {key: [cell.strip() for cell in rest.split("|")] for key, rest in rows}


def _kinds(cell: str) -> set[TargetKind]:
    return set(TargetKind) if cell == "all" else {TargetKind(k.strip()) for k in cell.split(",")}


def test_the_docs_name_the_kinds_each_key_applies_to() -> None:
    # testlists.md documents the non-VPN kinds; vpn.md the VPN ones (below).
    text = (DOCS / "testlists.md").read_text(encoding="utf-8")
    plain = [kind for kind in TargetKind if kind not in VPN_KINDS]
    targets, expectations = _table_rows(text, "## Targets"), _table_rows(text, "### Expectations")
    assert set(targets) == {*TARGET_COMMON, *(key for kind in plain for key in KINDS[kind].keys)}
    assert set(expectations) == ANY_EXPECT_KEY
    for key, cells in targets.items():
        takes = {kind for kind in plain if key in TARGET_COMMON + KINDS[kind].keys}
        assert takes == _kinds(cells[0]) & set(plain), key
    for key, cells in expectations.items():
        takes = {kind for kind in plain if key in KINDS[kind].expect}
        assert takes == _kinds(cells[0]) & set(plain), key


def test_the_vpn_docs_give_each_protocol_its_port_and_transports() -> None:
    rows = _table_rows((DOCS / "vpn.md").read_text(encoding="utf-8"), "## Targets")
    assert set(rows) == {str(kind) for kind in VPN_KINDS}
    for name, (port, transport, _) in rows.items():
        row = KINDS[TargetKind(name)]
        assert int(port.split()[0]) == row.port, name
        assert tuple(re.findall(r"\b(udp|tcp)\b", transport)) == row.transports, name
