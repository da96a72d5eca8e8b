"""A network reachability probe: per-feature verdicts with evidence, signed reports."""

from __future__ import annotations

__version__ = "0.1.0"
