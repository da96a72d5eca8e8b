"""Live runs against the replay of their own captures: every scenario x every list.

The runs are the verdict matrix's (the ``matrix`` fixture of conftest.py:
one lab per scenario, each list's run captured with the probe's TLS key
log, CA and VPN keys beside the pcap), so agreement costs a replay per
run, not a second matrix. Each capture is replayed with the live run's
options (``probe_lab.agreement``): every feature, timed downloads and
VPN handshakes included, and every VPN target must read as in the live
run. The message names every control, target and feature that differs:
checks of one name run side by side can read its addresses in another
order in the replay and trade a connection without changing a feature
(docs/replay.md, the ``partial`` scenario), so other targets are not
held to it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from probe.lists import load_testlist
from probe.model import VPN_KINDS
from probe_lab.agreement import Disagreement, agreement
from probe_lab.runner import ListRun
from probe_lab.scenario import shipped_scenarios

SCENARIOS = sorted(path.stem for path in shipped_scenarios())
# As test_lab_matrix.py's: run alone, this test makes the scenario's runs.
SCENARIO_TIMEOUT = 400


@pytest.mark.timeout(SCENARIO_TIMEOUT)
@pytest.mark.parametrize("name", SCENARIOS)
def test_the_replay_of_each_capture_agrees_with_the_live_run(
    name: str, matrix: Mapping[str, tuple[ListRun, ...]]
) -> None:
    differing: list[str] = []
    held = False
    for run in matrix[name]:
        found = agreement(run)
        config = found.replay["config"]
        # The replay read the probe's keys and judged with the live run's
        # prefixes and VPN keys.
        assert config["replay"]["keylog"] and not config["replay"]["warnings"], config
        assert config["prefix_overrides"] == run.report["config"]["prefix_overrides"]
        assert config.get("vpn_keys_given") == run.report["config"].get("vpn_keys_given")
        differing += [f"{run.testlist}: {d}" for d in found.disagreements]
        held |= any(_held(d, _vpn_targets(run)) for d in found.disagreements)
    assert not held, "replay differs from the live run:\n" + "\n".join(differing)


def _held(disagreement: Disagreement, vpn_targets: set[str]) -> bool:
    return disagreement.scope == "features" or disagreement.id in vpn_targets


def _vpn_targets(run: ListRun) -> set[str]:
    return {target.id for feature in load_testlist(run.path).features
            for target in feature.targets if target.kind in VPN_KINDS}
