"""What the control targets say about the network itself.

Controls are names that should work from anywhere (DESIGN.md: "controls
are targets too"). A probe whose controls fail is on a dead network or
behind a broken resolver, and nothing it sees about the other targets may
be called blocked.
"""

from __future__ import annotations

from collections.abc import Sequence

from probe.classify.dns import dns_failure, resolved_addresses
from probe.classify.methods import tally
from probe.classify.throughput import fastest_rate
from probe.model import ControlStatus, DNSObservation, Observation, Target


def classify_controls(
    controls: Sequence[tuple[Target, Sequence[Observation]]],
) -> ControlStatus:
    if not controls:
        # A list without controls chose to run without the check; making
        # every failure inconclusive would make such a list useless.
        return ControlStatus(
            True, True, "no controls in the test list: the dead-network check is off"
        )
    observations = [o for _, measured in controls for o in measured]
    lookups = [o for o in observations if isinstance(o, DNSObservation)]
    connects = [o for o in observations if not isinstance(o, DNSObservation)]
    # A blocked check (address_not_allowed) carries a failure, so it can
    # never count as working: the guard kept us from learning anything.
    resolved = [o for o in lookups if resolved_addresses(o)]
    connected = [o for o in connects if o.failure is None]
    if not resolved:
        failures = [dns_failure(o) or "no addresses" for o in lookups]
        seen = tally(failures) if failures else "no control lookup was made"
        return ControlStatus(
            False,
            bool(connected),
            f"no control name resolved: the resolver is unavailable ({seen})",
        )
    if not connected:
        failures = [str(o.failure) for o in connects]
        seen = tally(failures) if failures else "no control connection was attempted"
        return ControlStatus(
            True,
            False,
            "control names resolve but no control endpoint connects: "
            f"the network is unavailable ({seen})",
        )
    return ControlStatus(
        True,
        True,
        f"controls ok: {len(resolved)}/{len(lookups)} control lookups resolved, "
        f"{len(connected)}/{len(connects)} control connections succeeded",
        fastest_rate(connects),
    )
