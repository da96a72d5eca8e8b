"""Pcap and pcapng replay: the same observations and verdicts, offline.

Read a capture (``capfile``), decode headers (``probe.wire.packets``), follow flows
(``engine``: DNS exchanges, TCP connections with TLS and HTTP, UDP flows),
turn them into the probe's observations (``observe``; ``handshake`` for VPN
first exchanges), match them to a test list's targets (``match``) and
classify them like a live run (``report``).
Without a list, ``account`` says what happened, flow by flow. See
docs/replay.md.
"""

from __future__ import annotations

from probe.replay.account import AccountEntry, flow_account
from probe.replay.engine import CaptureSummary
from probe.replay.errors import ReplayError
from probe.replay.report import ReplayReport, default_settings, replay_report

__all__ = [
    "AccountEntry",
    "CaptureSummary",
    "ReplayError",
    "ReplayReport",
    "default_settings",
    "flow_account",
    "replay_report",
]
