"""Live runs against the replay of their own captures: every scenario x every list.

The runs are the verdict matrix's (the ``matrix`` fixture of conftest.py:
one lab per scenario, each list's run captured with the probe's TLS key
log and CA beside the pcap), so agreement costs a replay per run, not a
second matrix. Each capture is replayed with the live run's options
(``probe.lab.agreement``), and every feature's verdict and method must
be the live run's. The message names every control, target and feature
that differs.

One exception, by name: the replay does not rebuild VPN first exchanges
yet (docs/replay.md), so targets of those kinds, and the features they
take part in, are not held to the live run.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from probe.lab.agreement import agreement
from probe.lab.runner import ListRun
from probe.lab.scenario import shipped_scenarios
from probe.model import VPN_KINDS
from probe.testlist import load_testlist

SCENARIOS = sorted(path.stem for path in shipped_scenarios())
# As test_lab_matrix.py's: run alone, this test makes the scenario's runs.
SCENARIO_TIMEOUT = 400


@pytest.mark.timeout(SCENARIO_TIMEOUT)
@pytest.mark.parametrize("name", SCENARIOS)
def test_the_replay_of_each_capture_agrees_with_the_live_run(
    name: str, matrix: Mapping[str, tuple[ListRun, ...]]
) -> None:
    differing: list[str] = []
    features_differ = False
    for run in matrix[name]:
        found = agreement(run)
        config = found.replay["config"]
        # The replay read the probe's keys and judged with the live run's prefixes.
        assert config["replay"]["keylog"] and not config["replay"]["warnings"], config
        assert config["prefix_overrides"] == run.report["config"]["prefix_overrides"]
        pending = not_replayed_yet(run)
        differing += [f"{run.testlist}: {d}" + (" (VPN, not replayed yet)" if d.id in pending else "")
                      for d in found.disagreements]
        features_differ |= any(d.id not in pending for d in found.scope("features"))
    assert not features_differ, "replay differs from the live run:\n" + "\n".join(differing)


def not_replayed_yet(run: ListRun) -> set[str]:
    """Ids of the VPN-kind targets and of the features they take part in."""
    ids: set[str] = set()
    for feature in load_testlist(run.path).features:
        vpn = {target.id for target in feature.targets if target.kind in VPN_KINDS}
        ids |= vpn | ({feature.id} if vpn else set())
    return ids
