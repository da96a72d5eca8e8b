"""The test lists shipped with the probe: where they are, installed or in the source tree."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["default_controls_path", "default_testlists", "example_testlists"]


def default_controls_path() -> Path:
    """The shipped controls file: from the installed package, else the source tree."""
    try:
        resource = importlib.resources.files("probe.testlists") / "controls.yaml"
    except ModuleNotFoundError:
        resource = None
    if isinstance(resource, Path) and resource.is_file():
        return resource
    return Path(__file__).resolve().parents[2] / "testlists" / "controls.yaml"


def default_testlists() -> tuple[Path, ...]:
    """The shipped test lists (what ``probe run`` measures when given none), by name."""
    folder = default_controls_path().parent
    return tuple(sorted(p for p in folder.glob("*.yaml") if p.name != "controls.yaml"))


def example_testlists() -> tuple[Path, ...]:
    """The shipped templates (testlists/examples/): lists to copy for one's own
    servers, not run by default; the lab serves their names and checks them."""
    return tuple(sorted((default_controls_path().parent / "examples").glob("*.yaml")))
