"""``probe lab run``: build a lab, run the probe inside it, compare, tear down.

One lab per scenario serves every test list given: the network, servers
and censor are set up once, then the probe runs once per list in the
client namespace as a real subprocess (``python -m probe run ...``), and
its signed report is compared with the scenario's expectations. The lab
is removed whatever happens (``finally``, then removal by prefix).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.capture import keylog_path
from probe.files import write_private
from probe.lists import PrefixOverrides, load_testlist, parse_cidr_list
from probe.model import TargetKind
from probe.replay.vpnkeys import write_vpn_keys
from probe.vpn.registry import key_roles
from probe_lab import addressing
from probe_lab.capture import ca_bundle_path, vpn_keys_path
from probe_lab.capture import capture as capture_client
from probe_lab.censor import CensorHandle, apply_censor
from probe_lab.certs import LabCerts, make_lab_certs
from probe_lab.scenario import Expected, Scenario
from probe_lab.servers import LabServers, start_servers
from probe_lab.servers.vpn import VPNLab
from probe_lab.topology import (
    LabError,
    LabNet,
    child_env,
    create,
    destroy,
    run_in,
    state_dir,
)

__all__ = [
    "FeatureCheck",
    "Lab",
    "ListRun",
    "ProbeSettings",
    "lab_overrides",
    "lab_vpn_keys",
    "lab_up",
    "probe_argv",
    "probe_env",
    "run_scenario",
]

RESOLVER = f"udp://{addressing.RESOLVER_V4}:53"
_PROBE_GRACE = 60.0  # seconds past the probe's own budget before it is given up on


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """How the probe is run inside the lab."""

    # Lab runs are short and the lab's servers are local: many checks at
    # once keep a scenario full of timeouts within a minute.
    parallel: int = 32
    max_time: float = 300.0
    seed: int = 1  # a fixed order makes a lab run repeatable
    output_dir: Path | None = None  # keep the reports here (default: removed with the lab)


@dataclass(frozen=True, slots=True)
class FeatureCheck:
    feature: str
    verdict: str
    method: str
    expected: Expected | None  # None: the scenario says nothing for this feature

    @property
    def ok(self) -> bool:
        e = self.expected
        return e is None or (e.verdict == self.verdict and e.method == self.method)


@dataclass(frozen=True, slots=True)
class ListRun:
    """One probe run in the lab and how it compares with the scenario."""

    scenario: str
    testlist: str  # the list's name, as in the report
    path: Path  # the list's file
    report: Mapping[str, Any]
    report_path: Path
    checks: tuple[FeatureCheck, ...]
    # Features the scenario expects that the report does not have.
    missing: tuple[str, ...]
    capture: Path | None  # with its TLS key log, CA and VPN keys beside it (probe_lab.capture)

    @property
    def ok(self) -> bool:
        return not self.missing and all(c.ok for c in self.checks)


@dataclass(frozen=True, slots=True)
class Lab:
    """A running lab: network, certificates, servers and censor."""

    net: LabNet
    certs: LabCerts
    scenario: Scenario
    vpn: VPNLab  # the keys the lab's VPN servers answer to

    def probe(self, testlist: Path, settings: ProbeSettings = ProbeSettings(),
              capture: Path | None = None) -> ListRun:
        """Run the probe on one list in the client namespace and compare.

        With ``capture``, the probe's TLS keys go to the key log beside it
        (``SSLKEYLOGFILE``), so a replay reads TLS 1.3 and HTTPS as well, and
        the CA it trusts is copied there too (``ca_bundle_path``).
        """
        output = settings.output_dir or state_dir(self.net.prefix) / "results"
        output.mkdir(parents=True, exist_ok=True)
        env = probe_env(self.net)
        with ExitStack() as stack:
            if capture is not None:
                stack.enter_context(capture_client(self.net, capture))
                keys = keylog_path(capture)
                # OpenSSL appends to a key log, and keeps its mode: an empty
                # private one, so the keys are never readable by others.
                write_private(keys, b"")
                env["SSLKEYLOGFILE"] = str(keys.resolve())
                shutil.copyfile(self.certs.ca, ca_bundle_path(capture))
                # The lab's key files go with the lab: keep what replay needs.
                write_vpn_keys(vpn_keys_path(capture), lab_vpn_keys([testlist], self.vpn))
            try:
                result = run_in(
                    self.net.client_ns,
                    [sys.executable, "-m",
                     *probe_argv([testlist], self.certs, output, settings, vpn=self.vpn)],
                    capture_output=True,
                    text=True,
                    env=child_env(**env),
                    timeout=settings.max_time + _PROBE_GRACE,
                )
            except subprocess.TimeoutExpired:
                raise LabError(f"the probe did not finish {testlist} in the lab within "
                               f"{settings.max_time + _PROBE_GRACE:.0f} s") from None
        if result.returncode != 0:
            raise LabError(f"the probe failed in the lab (exit {result.returncode}): "
                           f"{' '.join(result.stderr.split())[-400:]}")
        # --quiet: the probe prints the report's path, nothing else.
        report_path = Path(result.stdout.strip())
        report = json.loads(report_path.read_text())
        return compare(self.scenario, report, report_path, testlist, capture)


def run_scenario(
    scenario: Scenario,
    testlists: Sequence[Path],
    settings: ProbeSettings = ProbeSettings(),
    capture_dir: Path | None = None,
    on_run: Callable[[ListRun], None] | None = None,
) -> tuple[ListRun, ...]:
    """Build the scenario's lab, run every list in it, tear it down."""
    runs = []
    with lab_up(scenario, testlists) as lab:
        for path in testlists:
            capture = None
            if capture_dir is not None:
                capture_dir.mkdir(parents=True, exist_ok=True)
                capture = capture_dir / f"{scenario.name}-{_list_name(path)}.pcap"
            run = lab.probe(path, settings, capture)
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return tuple(runs)


@contextmanager
def lab_up(scenario: Scenario, testlists: Sequence[Path] = (), prefix: str | None = None,
           keep: bool = False) -> Iterator[Lab]:
    """The scenario's lab, running; removed on exit (unless ``keep``) and on any error.

    The zone serves every name of the shipped lists, of ``testlists`` and
    of the scenario's own zone.
    """
    names = set(addressing.lab_names(str(p) for p in testlists))
    plan = addressing.address_plan(names)
    # pptpd and xl2tpd speak IPv4 only, as many such servers do: no AAAA.
    for host in _hosts_of(testlists, TargetKind.PPTP, TargetKind.L2TP):
        plan[host] = tuple(a for a in plan[host] if ":" not in a)
    zone = scenario.build_zone(plan)
    net = create(prefix, addresses=zone.addresses())
    parts: list[LabServers | CensorHandle] = []
    try:
        directory = state_dir(net.prefix)
        certs = make_lab_certs(directory / "certs", sorted(names | set(zone.entries)))
        served = zone.addresses()
        # TCP 443 of SSTP hosts goes to the SSTP responder, not nginx.
        sstp = [a for host in _hosts_of(testlists, TargetKind.SSTP) for a in served.get(host, ())]
        servers = start_servers(net, zone, certs, directory / "servers", sstp_addresses=sstp)
        parts.append(servers)
        (directory / "censor").mkdir()
        parts.append(apply_censor(net, scenario.censor, directory / "censor"))
        yield Lab(net, certs, scenario, servers.vpn)
    except BaseException:
        _teardown(net, parts)
        raise
    if not keep:
        _teardown(net, parts)


def _teardown(net: LabNet, parts: Sequence[LabServers | CensorHandle]) -> None:
    try:
        for part in reversed(parts):
            part.stop()
    finally:
        # Whatever stop() missed goes with the namespaces.
        destroy(net.prefix)


def compare(
    scenario: Scenario, report: Mapping[str, Any], report_path: Path, testlist: Path,
    capture: Path | None,
) -> ListRun:
    """Each feature's verdict and method in ``report`` against the scenario's expectations."""
    name = report["testlist"]["name"]
    expected = scenario.expect.get(name, {})
    checks = tuple(
        FeatureCheck(f["id"], f["verdict"], f["method"], expected.get(f["id"]))
        for f in report["features"]
    )
    seen = {c.feature for c in checks}
    missing = tuple(f for f in expected if f not in seen)
    return ListRun(scenario.name, name, testlist, report, report_path, checks, missing, capture)


def probe_argv(testlists: Sequence[Path], certs: LabCerts, output: Path,
               settings: ProbeSettings, *, vpn: VPNLab, quiet: bool = True) -> list[str]:
    """``probe run ...`` as the lab runs it in the client namespace."""
    overrides = lab_overrides(testlists)
    keys = lab_vpn_keys(testlists, vpn)
    return [
        "probe", "run", *(str(p.resolve()) for p in testlists),
        "--resolver", RESOLVER,
        "--ca-bundle", str(certs.ca),
        "--output-dir", str(output.resolve()),
        "--parallel", str(settings.parallel),
        "--max-time", str(settings.max_time),
        "--seed", str(settings.seed),
        "--default-prefixes", ",".join(overrides.default),
        *(arg for table, cidrs in sorted(overrides.tables.items())
          for arg in ("--prefix-table", f"{table}={','.join(cidrs)}")),
        *(arg for name, value in sorted(keys.items()) for arg in ("--vpn-key", f"{name}={value}")),
        *(["--quiet"] if quiet else []),
    ]


def lab_vpn_keys(testlists: Sequence[Path], vpn: VPNLab) -> dict[str, str]:
    """The lab's key for every key name the lists' VPN targets use (``--vpn-key``).

    Whatever a list says (Cloudflare's real key, or no value at all), its
    WireGuard targets meet the lab's wireguard-go and its OpenVPN targets
    the lab's tls-auth and tls-crypt servers: they get the lab's keys.
    Key files go by path (``@FILE``), as a user would pass a ta.key.
    """
    keys = {
        name or "": vpn.key(role)
        for path in testlists for feature in load_testlist(path).features
        for target in feature.targets for name, role in key_roles(target)
    }
    keys.pop("", None)  # a target that names no key
    return keys


def lab_overrides(testlists: Sequence[Path]) -> PrefixOverrides:
    """The expected prefixes the lab gives the probe (and a replay of its runs).

    Lab answers are documentation addresses: expected for every target
    (so not bogons), and in place of every named table (e.g. facebook's AS32934).
    """
    lab = parse_cidr_list(addressing.LAB_PREFIXES, "LAB_PREFIXES")
    tables = sorted({t for path in testlists for t in _prefix_tables(path)})
    return PrefixOverrides(tables={t: lab for t in tables}, default=lab)


def probe_env(net: LabNet) -> dict[str, str]:
    """The probe's variables in the lab: the address guard, and a throwaway signing key."""
    return {
        "PROBE_ALLOW_NETWORKS": addressing.LAB_ALLOW_NETWORKS,
        "PROBE_CONFIG_DIR": str(state_dir(net.prefix) / "probe-config"),
    }


def _prefix_tables(path: Path) -> set[str]:
    testlist = load_testlist(path)
    targets = [*testlist.controls, *(t for f in testlist.features for t in f.targets)]
    return {t.expect.prefix_table for t in targets if t.expect.prefix_table}


def _hosts_of(testlists: Sequence[Path], *kinds: TargetKind) -> set[str]:
    """Host names of the lab's (and ``testlists``') targets of these kinds."""
    paths = [*addressing.lab_lists(), *testlists]
    return {t.host for path in paths for f in load_testlist(path).features for t in f.targets
            if t.kind in kinds}


def _list_name(path: Path) -> str:
    return load_testlist(path).name
