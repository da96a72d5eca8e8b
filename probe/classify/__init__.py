"""Pure verdict rules: observations in, verdicts out.

No sockets, clocks, asyncio or scapy here: live runs and pcap replay feed
the same observations and must get the same verdicts, byte for byte. The
rules are written down in docs/classification.md.
"""

from __future__ import annotations

from probe.classify.controls import classify_controls
from probe.classify.feature import classify_feature, deciding_verdicts
from probe.classify.methods import Method
from probe.classify.target import classify_target

__all__ = [
    "Method",
    "classify_controls",
    "classify_feature",
    "classify_target",
    "deciding_verdicts",
]
