"""The lab's on-path censor: nftables, tc and a small inspector in the censor namespace.

A scenario's ``censor:`` section goes through :func:`parse_censor` (its
schema is in ``probe_lab.censor.config``); :func:`apply_censor` puts the
result to work in a lab and returns a handle whose ``stop()`` removes it.
docs/lab.md, "Censor behaviours", explains each behaviour.
"""

from __future__ import annotations

from probe_lab.censor.apply import CensorError, CensorHandle, apply_censor
from probe_lab.censor.config import (
    BLOCKPAGE_TITLE,
    CensorConfig,
    CensorConfigError,
    parse_censor,
)
from probe_lab.censor.rules import ruleset, tc_commands

__all__ = [
    "BLOCKPAGE_TITLE",
    "CensorConfig",
    "CensorConfigError",
    "CensorError",
    "CensorHandle",
    "apply_censor",
    "parse_censor",
    "ruleset",
    "tc_commands",
]
