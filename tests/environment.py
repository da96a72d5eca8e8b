"""Tests that need root or a tool: skip outside CI, fail loudly in CI.

CI must never turn green by skipping (DEVELOPERS.md), so a missing tool
there is a failure naming it; on a developer's machine it is a skip with
a one-line reason.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(*, root: bool = False, tools: tuple[str, ...] = ()) -> str | None:
    """Why this machine cannot run the test, or None."""
    if root and os.geteuid() != 0:
        return "needs root"
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    absent = [tool for tool in tools if shutil.which(tool, path=path) is None]
    if absent:
        return f"needs {', '.join(absent)} (see .ci/run for the Debian packages)"
    return None


def require(*, root: bool = False, tools: tuple[str, ...] = ()) -> None:
    reason = missing(root=root, tools=tools)
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)
