"""Test lists, one module per job (``probe lists`` is their command):

- :mod:`probe.lists.schema`: which keys exist where; one row per target kind;
- :mod:`probe.lists.loader`: a YAML file in, a validated :class:`~probe.model.TestList`
  out, every problem a one-line :class:`TestListError` (``FILE:LINE:COL``);
- :mod:`probe.lists.overrides`: what the command line changes at run time
  (expected prefixes, VPN keys), without editing a list;
- :mod:`probe.lists.shipped`: where the shipped lists are.

The lists themselves are data, in the package ``probe.testlists``.
"""

from __future__ import annotations

from probe.lists.loader import TestListError, load_testlist
from probe.lists.overrides import (
    PrefixOverrides,
    apply_key_overrides,
    apply_prefix_overrides,
    parse_cidr_list,
    parse_prefix_table,
    parse_vpn_key,
)
from probe.lists.shipped import (
    default_controls_path,
    default_testlists,
    example_testlists,
)

__all__ = [
    "PrefixOverrides",
    "TestListError",
    "apply_key_overrides",
    "apply_prefix_overrides",
    "default_controls_path",
    "default_testlists",
    "example_testlists",
    "load_testlist",
    "parse_cidr_list",
    "parse_prefix_table",
    "parse_vpn_key",
]
