"""What every lab test needs: root and the lab's commands, or a clear reason why not.

Outside CI a machine without them skips the lab tests with a one-line
reason. In CI (CI=true) a lab test that cannot start FAILS: the verdict
matrix must never pass by being skipped.

``matrix``: every shipped scenario run once against every shipped list,
captured, shared by the verdict matrix and the live/replay agreement.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from environment import missing, require

from probe_lab import addressing, requirements
from probe_lab.runner import ListRun, run_scenario
from probe_lab.scenario import find_scenario, load_scenario

# The programs of the lab's Debian packages (probe_lab.requirements, which
# `probe lab doctor` checks).
LAB_COMMANDS = requirements.lab_commands()


@pytest.fixture(scope="session")
def lab_host() -> None:
    """Use in every test that builds a lab."""
    require(root=True, tools=LAB_COMMANDS)


class Runs(dict[str, tuple[ListRun, ...]]):
    """Each scenario's runs, made on first use, each list's run captured
    (with the probe's key log and CA beside the pcap): one lab per scenario
    for every test that asks."""

    def __init__(self, captures: Path) -> None:
        super().__init__()
        self.captures = captures

    def __missing__(self, name: str) -> tuple[ListRun, ...]:
        scenario = load_scenario(find_scenario(name))
        self[name] = run_scenario(scenario, list(addressing.lab_lists()),
                                  capture_dir=self.captures / name)
        return self[name]


@pytest.fixture(scope="session")
def matrix(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("captures"))


@pytest.fixture(scope="session", autouse=True)
def no_lab_left_behind() -> Iterator[None]:
    """A safety net: labs this session created and did not remove go at its end.

    Labs that existed before the session, and labs another running process
    made meanwhile (a teammate's test run), are left alone.
    """
    if missing(root=True, tools=LAB_COMMANDS) is not None:
        yield
        return
    from probe_lab import topology

    before = set(topology.lab_prefixes())
    yield
    for prefix in set(topology.lab_prefixes()) - before:
        if not topology.in_use_elsewhere(prefix):
            topology.destroy(prefix)
