"""``probe lab``: list, run, bring up and take down lab scenarios; check the machine.

The probe finds :func:`main` through the ``probe.commands`` entry point
this package declares (lab/pyproject.toml) and hands it the arguments
after ``probe lab``; the probe itself never imports the lab. Exit codes follow
the probe's: 0 ok (every feature as the scenario expects), 1 some feature
differs, 2 usage or input error (bad scenario or list, no root, a lab
that cannot start).
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from probe import ui
from probe_lab import addressing, requirements
from probe_lab.runner import (
    FeatureCheck,
    ListRun,
    ProbeSettings,
    lab_up,
    probe_argv,
    probe_env,
    run_scenario,
)
from probe_lab.scenario import (
    find_scenario,
    load_scenario,
    shipped_scenarios,
)
from probe_lab.topology import destroy_all, require_root, state_dir

__all__ = ["main"]

EXIT_OK, EXIT_DIFFERS = 0, 1


def main(argv: Sequence[str]) -> int:
    """Run ``probe lab ARGV...``; returns the exit code. Every lab problem is
    an ``InputError``, which the probe's command line turns into exit 2."""
    args = parser().parse_args(argv)
    return int(args.handler(args))


def parser() -> argparse.ArgumentParser:
    """The ``probe lab`` command line (also read by shell completion)."""
    lab = argparse.ArgumentParser(
        prog="probe lab",
        description="Build a lab of network namespaces (client, on-path censor, servers) "
        "from a scenario file, run the probe inside it and compare its verdicts with the "
        "scenario's. Needs root. See docs/lab.md.",
    )
    actions = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="show the shipped scenarios")
    listing.add_argument("--json", action="store_true", help="one JSON object per scenario on stdout")
    listing.set_defaults(handler=cmd_list)

    run = actions.add_parser(
        "run",
        help="build a scenario's lab, run test lists in it, compare, tear it down",
        description="Exit 0 when every feature's verdict and method is what the scenario "
        "expects, 1 when one differs, 2 on an input error or a lab that cannot start.",
    )
    run.add_argument("scenario", metavar="SCENARIO", help="a shipped scenario's name or a scenario file")
    run.add_argument("lists", nargs="*", type=Path, metavar="LIST",
                     help="test lists (default: the shipped lists)")
    run.add_argument("--capture", type=Path, metavar="DIR",
                     help="also write a pcap of the client's interface per list: DIR/SCENARIO-LIST.pcap")
    run.add_argument("--output-dir", type=Path, metavar="DIR",
                     help="keep the signed reports here (default: removed with the lab)")
    run.add_argument("--json", action="store_true",
                     help="one JSON object per list on stdout: every feature's verdict beside the expected one")
    run.set_defaults(handler=cmd_run)

    up = actions.add_parser("up", help="build a scenario's lab and leave it running")
    up.add_argument("scenario", metavar="SCENARIO")
    up.set_defaults(handler=cmd_up)

    down = actions.add_parser("down", help="remove every lab on this machine")
    down.add_argument("--json", action="store_true", help="the removed labs as JSON on stdout")
    down.set_defaults(handler=cmd_down)

    doctor = actions.add_parser(
        "doctor",
        help="check the Debian packages and kernel features the lab needs",
        description="Exit 0 when everything the lab (and its tests) needs is here, 1 when "
        "something is missing; prints the apt-get command that installs the missing packages.",
    )
    doctor.add_argument("--json", action="store_true", help="the checks as JSON on stdout")
    doctor.set_defaults(handler=cmd_doctor)
    return lab


def cmd_list(args: argparse.Namespace) -> int:
    for path in shipped_scenarios():
        scenario = load_scenario(path)
        if args.json:
            ui.plain(json.dumps({"name": scenario.name, "description": " ".join(scenario.description.split()),
                                 "lists": sorted(scenario.expect)}, ensure_ascii=False))
            continue
        lists = ", ".join(sorted(scenario.expect)) or "no expectations"
        ui.plain(f"{scenario.name:<14} {_first_sentence(scenario.description)} [{lists}]")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    scenario = load_scenario(find_scenario(args.scenario))
    lists = list(args.lists) or list(addressing.lab_lists())
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    require_root()
    runs = run_scenario(
        scenario,
        lists,
        ProbeSettings(output_dir=args.output_dir),
        capture_dir=args.capture,
        on_run=_show_json if args.json else lambda run: _show(run, kept=args.output_dir is not None),
    )
    return EXIT_OK if all(run.ok for run in runs) else EXIT_DIFFERS


def cmd_up(args: argparse.Namespace) -> int:
    scenario = load_scenario(find_scenario(args.scenario))
    require_root()
    lists = list(addressing.lab_lists())
    with lab_up(scenario, lists, keep=True) as lab:
        net = lab.net
        output = state_dir(net.prefix) / "results"
        env = " ".join(f"{k}={v}" for k, v in probe_env(net).items())
        command = shlex.join(probe_argv(lists, lab.certs, output, ProbeSettings(), vpn=lab.vpn, quiet=False))
        ui.plain(f"lab {net.prefix} is up with scenario {scenario.name!r}")
        ui.plain(f"  namespaces: {net.client_ns} (the probe), {net.censor_ns}, {net.server_ns}")
        ui.plain(f"  files:      {state_dir(net.prefix)} (certificates, zone, server logs)")
        ui.plain(f"  a shell:    ip netns exec {net.client_ns} bash")
        ui.plain(f"  measure:    ip netns exec {net.client_ns} env {env} {command}")
        ui.plain("  remove:     probe lab down")
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    removed = destroy_all()
    if args.json:
        ui.plain(json.dumps({"removed": list(removed)}))
    else:
        ui.plain(f"removed {', '.join(removed)}" if removed else "no lab to remove")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    packages, kernel = requirements.check_packages(), requirements.check_kernel()
    missing = [check.name for check in packages if not check.present]
    install = requirements.install_command(missing) if missing else None
    ok = all(check.present for check in (*packages, *kernel))
    if args.json:
        ui.plain(json.dumps({
            "ok": ok,
            "packages": [_check_dict(check) for check in packages],
            "kernel": [_check_dict(check) for check in kernel],
            "install": install,
        }, indent=2))
        return EXIT_OK if ok else EXIT_DIFFERS
    ui.plain("Debian packages:")
    for check in packages:
        _show_check(check)
    ui.plain("Kernel and privileges:")
    for check in kernel:
        _show_check(check)
    if install:
        ui.plain(f"install the missing packages (as root):\n  {install}")
    if not all(check.present for check in kernel):
        ui.plain("a kernel feature is missing: the lab needs a Linux kernel with it, and root")
    if ok:
        ui.plain("everything the lab needs is here")
    return EXIT_OK if ok else EXIT_DIFFERS


def _check_dict(check: requirements.Check) -> dict[str, object]:
    return {"name": check.name, "present": check.present, "purpose": check.purpose,
            "detail": check.detail}


def _show_check(check: requirements.Check) -> None:
    state = "ok" if check.present else "MISSING"
    detail = f" ({check.detail})" if check.detail else ""
    ui.plain(f"  {state:<8}{check.name:<32}{check.purpose}{detail}")


def _show(run: ListRun, kept: bool) -> None:
    ui.plain(f"scenario {run.scenario}, list {run.testlist}:")
    where = str(run.report_path) if kept else "removed with the lab (keep it with --output-dir)"
    ui.summary(run.report, where)
    for check in run.checks:
        if check.expected is not None and not check.ok:
            expected = f"{check.expected.verdict}/{check.expected.method}"
            ui.plain(f"  differs: {check.feature} is {check.verdict}/{check.method}, "
                     f"the scenario expects {expected}")
    for feature in run.missing:
        ui.plain(f"  differs: the scenario expects feature {feature!r}, the list has none")
    if run.capture is not None:
        ui.plain(f"capture: {run.capture}")
    judged = sum(check.expected is not None for check in run.checks)
    verdict = "as expected" if run.ok else "NOT as expected"
    ui.plain(f"{run.scenario} x {run.testlist}: {judged}/{len(run.checks)} features checked, {verdict}")


def _show_json(run: ListRun) -> None:
    def expected(check: FeatureCheck) -> dict[str, str] | None:
        e = check.expected
        return None if e is None else {"verdict": e.verdict, "method": e.method}

    ui.plain(json.dumps({
        "scenario": run.scenario, "list": run.testlist, "ok": run.ok,
        "features": [{"feature": c.feature, "verdict": c.verdict, "method": c.method,
                      "expected": expected(c), "ok": c.ok} for c in run.checks],
        "missing": list(run.missing),
        "capture": None if run.capture is None else str(run.capture),
    }, ensure_ascii=False))


def _first_sentence(text: str) -> str:
    sentence = " ".join(text.split()).split(". ", 1)[0].rstrip(".")
    return sentence + "."
