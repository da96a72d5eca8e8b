"""probe.lists.overrides: prefixes and VPN keys given at run time."""

from __future__ import annotations

from pathlib import Path

import pytest
from list_samples import SHIPPED, VPN_LIST

from probe.errors import InputError
from probe.lists import (
    PrefixOverrides,
    apply_key_overrides,
    apply_prefix_overrides,
    load_testlist,
    parse_prefix_table,
    parse_vpn_key,
)


def test_prefix_overrides_replace_named_tables_and_fill_the_rest() -> None:
    original = load_testlist(SHIPPED / "facebook.yaml")
    overrides = PrefixOverrides(tables={"facebook": ("203.0.113.0/24",), "unused": ("198.51.100.0/24",)},
                                default=("2001:db8:5::/64",))
    changed = apply_prefix_overrides(original, overrides)
    pairs = [(a, b) for fa, fb in zip(original.features, changed.features)
             for a, b in zip(fa.targets, fb.targets)]
    assert any(a.expect.prefix_table == "facebook" for a, _ in pairs)
    for before, after in pairs:
        if before.expect.prefix_table == "facebook":
            assert after.expect.prefixes == ("203.0.113.0/24",)
            assert after.expect.asn == before.expect.asn  # only the ranges change
        elif not before.expect.prefixes:
            assert after.expect.prefixes == ("2001:db8:5::/64",)
        else:
            assert after.expect == before.expect
    assert all(c.expect.prefixes == ("2001:db8:5::/64",) for c in changed.controls)
    assert apply_prefix_overrides(original, PrefixOverrides()) == original


@pytest.mark.parametrize("text", ["facebook", "=1.2.3.0/24", "facebook=", "facebook=1.2.3.4/8", "x=nope"])
def test_bad_prefix_table_flags_are_one_line_errors(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_prefix_table(text)
    assert "--prefix-table" in str(caught.value) and "\n" not in str(caught.value)



def test_vpn_keys_given_at_run_time_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(VPN_LIST)
    testlist = load_testlist(path)
    client = "YEocP0e2o1WT5GlvBvQzVF7EeR6Z7aCa+HzJj2G8R2A="
    given = apply_key_overrides(testlist, {"client": client, "unused": "x"})
    assert dict(given.keys) == {"server": dict(testlist.keys)["server"], "client": client}
    with pytest.raises(InputError, match="--vpn-key ta: not an OpenVPN static key"):
        apply_key_overrides(testlist, {"ta": "not a key"})
    key_file = tmp_path / "client.key"
    key_file.write_text(client + "\n")
    assert parse_vpn_key(f"client=@{key_file}") == ("client", client)
    with pytest.raises(InputError, match="expected NAME=VALUE or NAME=@FILE"):
        parse_vpn_key("client")
