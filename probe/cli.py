"""Command line: argument parsing and wiring, nothing else.

Exit codes (probe.errors, documented in the README):
  0  ok (a run finished, a report is valid, two reports are the same)
  1  verification failed, or a diff found changes
  2  usage or input error (any InputError: bad test list, bad report file,
     bad key file, bad PROBE_ALLOW_NETWORKS, bad --resolver ...)
  3  internal error: a bug (--debug shows the traceback)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path

import argcomplete

from probe import __version__, ui
from probe.capture import bpf_for, capture
from probe.diff import diff_reports
from probe.errors import EXIT_BUG, EXIT_FOUND, EXIT_INPUT, EXIT_OK, InputError
from probe.journal import Journal, journal_path
from probe.keys import KeyInfo, generate_key, key_info, load_key, load_or_create_key
from probe.lists import (
    PrefixOverrides,
    TestListError,
    apply_key_overrides,
    apply_prefix_overrides,
    default_testlists,
    load_testlist,
    parse_cidr_list,
    parse_prefix_table,
    parse_vpn_key,
)
from probe.model import TargetResult, TestList
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.guard import AllowList
from probe.net.plan import Measurer
from probe.net.tls import TrustStore
from probe.plan import CheckSettings
from probe.replay import flow_account, replay_report
from probe.replay.vpnkeys import read_vpn_keys
from probe.report import (
    MAX_ASN,
    free_stem,
    load_report,
    report_of_run,
    report_stem,
    write_report_atomic,
)
from probe.resolver import parse_resolver
from probe.runner import RunOptions, run_testlist
from probe.sign import SigningKey, sign_report, verify_file


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # Answers a shell's completion request (and exits) when the shell asks.
    argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    with _debug_log(args.debug):
        return _handle(args)


@contextmanager
def _debug_log(enabled: bool) -> Iterator[None]:
    """With --debug, the probe's debug log (the exception behind every
    unknown_failure) goes to stderr, never into a report."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("probe")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def _handle(args: argparse.Namespace) -> int:
    """Run the chosen command; map what escapes it to an exit code."""
    try:
        return int(args.handler(args))
    except InputError as exc:
        ui.error(str(exc))
        return EXIT_INPUT
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        ui.error("interrupted; finished targets are kept in the journal next to the report")
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        ui.error(
            f"internal error (a bug in the probe, not in your input): {type(exc).__name__}: "
            f"{exc}; run again with --debug to see where, and please report it"
        )
        return EXIT_BUG


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probe",
        description="Measure which features of a service are reachable, blocked or "
        "degraded from this network, and how; writes signed JSON reports.",
        epilog="Exit codes: 0 ok; 1 verification failed or diff found changes; "
        "2 usage or input error; 3 internal error (a bug).",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on stderr: tracebacks, and the exception behind every unknown_failure",
    )
    parser.add_argument("--version", action="version", version=f"probe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="measure test lists and write signed reports",
        description="Measure one or more test lists (default: the shipped lists) and "
        "write one signed report per list. Set PROBE_ALLOW_NETWORKS (comma-separated "
        "CIDRs) to refuse any other destination.",
    )
    run.add_argument("lists", nargs="*", metavar="LIST", help="test list YAML files")
    run.add_argument(
        "--resolver",
        default="system",
        help="system (default, from /etc/resolv.conf), udp://ADDR[:PORT], "
        "tcp://ADDR[:PORT] or https://HOST/dns-query (DoH)",
    )
    run.add_argument("--parallel", type=_positive_int, default=8, metavar="N", help="concurrent checks (default 8)")
    run.add_argument("--max-time", type=float, default=600.0, metavar="SECONDS", help="wall-time budget per list (default 600)")
    run.add_argument("--output-dir", type=Path, default=Path("results"), metavar="DIR", help="where reports go (default results/)")
    run.add_argument("--seed", type=int, help="seed for the random target order (for reproducible runs)")
    _add_run_options(run)
    _add_probe_info_arguments(run)
    run.add_argument(
        "--capture",
        type=Path,
        metavar="FILE",
        help="also record the probe's traffic to FILE (.pcapng or .pcap; needs root or CAP_NET_RAW)",
    )
    run.add_argument("--capture-interface", default="any", metavar="IF", help="interface to capture on (default any)")
    output = run.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only the report paths")
    output.add_argument("--json", action="store_true", help="print the reports as JSON on stdout")
    run.set_defaults(handler=cmd_run)

    verify = sub.add_parser(
        "verify",
        help="check a report's signature",
        description="Check that a report is exactly as its signer wrote it. Exit 0 if "
        "valid, 1 if not.",
    )
    verify.add_argument("reports", nargs="+", metavar="REPORT")
    verify.add_argument("--key-id", help="also require this signer key id")
    verify.add_argument("--json", action="store_true", help="one JSON object per report on stdout")
    verify.set_defaults(handler=cmd_verify)

    diff = sub.add_parser(
        "diff",
        help="compare two reports",
        description="Show per feature and per target what changed between two "
        "reports. Exit 0 if nothing changed, 1 if something did.",
    )
    diff.add_argument("before", type=Path)
    diff.add_argument("after", type=Path)
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.set_defaults(handler=cmd_diff)

    keys = sub.add_parser("keys", help="show or generate the signing key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    show = keys_sub.add_parser(
        "show", help="print the key id and public key (never creates a key: probe run or keys generate do)"
    )
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=cmd_keys_show)
    gen = keys_sub.add_parser("generate", help="create a new signing key")
    gen.add_argument("--force", action="store_true", help="replace an existing key")
    gen.add_argument("--json", action="store_true", help="machine-readable output")
    gen.set_defaults(handler=cmd_keys_generate)

    replay = sub.add_parser(
        "replay",
        help="classify a recorded capture, or tell what happened in it",
        description="Replay a pcap/pcapng capture. With --list: the same observations, "
        "verdicts and signed report a live run gives (give it the run's --ca-bundle, "
        "--prefix-table, --default-prefixes and --vpn-key or --vpn-keys). Without: one line per flow.",
    )
    replay.add_argument("pcap", type=Path, metavar="FILE")
    replay.add_argument("--list", dest="testlist", metavar="LIST", help="test list to classify against")
    replay.add_argument("--keylog", type=Path, metavar="FILE", help="TLS key log (default: FILE.keylog beside a .pcap, or keys inside a .pcapng)")
    replay.add_argument("--output-dir", type=Path, default=Path("results"), metavar="DIR", help="where the report goes (default results/)")
    _add_run_options(replay)
    replay.add_argument("--vpn-keys", type=Path, metavar="FILE",
                        help="a VPN key file (JSON, name to value; the lab leaves one beside its captures), "
                        "read before any --vpn-key")
    _add_probe_info_arguments(replay)
    replay_output = replay.add_mutually_exclusive_group()
    replay_output.add_argument("--quiet", action="store_true", help="print only the report path")
    replay_output.add_argument("--json", action="store_true", help="JSON on stdout (the report, or one flow per line)")
    replay.set_defaults(handler=cmd_replay)

    lists = sub.add_parser("lists", help="work with test lists")
    lists_sub = lists.add_subparsers(dest="lists_command", required=True, metavar="ACTION")
    validate = lists_sub.add_parser("validate", help="check test lists and report every error position")
    validate.add_argument("lists", nargs="+", metavar="LIST")
    validate.add_argument("--json", action="store_true", help="one JSON object per list on stdout")
    validate.set_defaults(handler=cmd_lists_validate)

    completion = sub.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh or fish)",
        description="Print a script that completes probe's commands and options. "
        "bash: eval \"$(probe completion bash)\" in ~/.bashrc; zsh: the same in ~/.zshrc; "
        "fish: probe completion fish > ~/.config/fish/completions/probe.fish",
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    completion.set_defaults(handler=cmd_completion)

    for command in sub.choices.values():
        # `probe run ... --debug` as well as `probe --debug run ...`.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    lab = sub.add_parser(
        "lab",
        help="run the probe in a simulated censored network (root; installed apart: "
        "pip install '.[lab]')",
        add_help=False,
    )
    lab.add_argument("lab_args", nargs=argparse.REMAINDER)
    lab.set_defaults(handler=cmd_plugin("lab"))
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a run that shape its verdicts: ``probe replay`` takes
    them too, to judge a capture as its live run was judged."""
    parser.add_argument("--ca-bundle", metavar="FILE", help="trust these CAs instead of the system store")
    parser.add_argument(
        "--prefix-table",
        action="append",
        default=[],
        metavar="NAME=CIDR,...",
        help="replace the list's prefix table NAME (e.g. with fresher ranges, or a lab's)",
    )
    parser.add_argument(
        "--default-prefixes",
        metavar="CIDR,...",
        help="expected prefixes for every target that has none (e.g. a lab's own ranges)",
    )
    parser.add_argument(
        "--vpn-key",
        action="append",
        default=[],
        metavar="NAME=VALUE|NAME=@FILE",
        help="give the list's VPN key NAME (a WireGuard key, an OpenVPN tls-auth/tls-crypt key file); never written to the report",
    )


def _prefix_overrides(args: argparse.Namespace) -> PrefixOverrides:
    return PrefixOverrides(
        tables=dict(parse_prefix_table(text) for text in args.prefix_table),
        default=parse_cidr_list(args.default_prefixes, "--default-prefixes")
        if args.default_prefixes
        else (),
    )


def _add_probe_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--probe-asn", type=int, help="the measured network's ASN, if you know it (never an IP)")
    parser.add_argument("--probe-cc", help="the measured network's two-letter country code, if you know it")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# --------------------------------------------------------------------------
# probe run


@dataclass(frozen=True, slots=True)
class RunSetup:
    """Everything ``probe run`` decided before the first packet."""

    key: SigningKey
    allow: AllowList
    settings: CheckSettings
    trust: TrustStore
    options: RunOptions
    output_dir: Path
    overrides: PrefixOverrides
    probe_info: dict[str, object]
    show_progress: bool
    vpn_keys: tuple[str, ...] = ()  # names given with --vpn-key; values never leave the run

    def config(self) -> dict[str, object]:
        """The settings that shaped the measurements, for the report."""
        settings = self.settings
        config: dict[str, object] = {
            "resolver": settings.resolver.text,
            "parallel": self.options.parallel,
            "max_time": self.options.max_time,
            "timeouts": settings.timeouts(),
        }
        if self.overrides:
            config["prefix_overrides"] = self.overrides.describe()
        if self.vpn_keys:
            config["vpn_keys_given"] = list(self.vpn_keys)
        return config


def cmd_run(args: argparse.Namespace) -> int:
    paths = args.lists or [str(p) for p in default_testlists()]
    overrides = _prefix_overrides(args)
    vpn_keys = dict(parse_vpn_key(text) for text in args.vpn_key)
    # Every input error surfaces before any traffic.
    testlists = [
        apply_key_overrides(apply_prefix_overrides(load_testlist(p), overrides), vpn_keys)
        for p in paths
    ]
    setup = RunSetup(
        key=load_or_create_key(),
        allow=AllowList.from_env(),
        settings=CheckSettings(resolver=parse_resolver(args.resolver)),
        trust=TrustStore.from_bundle(args.ca_bundle) if args.ca_bundle else TrustStore(),
        options=RunOptions(parallel=args.parallel, max_time=args.max_time, seed=args.seed),
        output_dir=args.output_dir,
        overrides=overrides,
        probe_info=_probe_info(args),
        show_progress=not (args.quiet or args.json),
        vpn_keys=tuple(sorted(vpn_keys)),
    )
    try:
        setup.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output-dir {setup.output_dir}: {exc.strerror}") from None

    with ExitStack() as stack:
        if args.capture is not None:
            # Started (and its permissions checked) before the first packet.
            bpf = bpf_for(testlists, setup.settings.resolver.port)
            stack.enter_context(capture(args.capture, args.capture_interface, bpf))
        for testlist in testlists:
            report, path = _run_one(testlist, setup)
            _show_report(report, path, args)
    if args.capture is not None and not (args.quiet or args.json):
        ui.plain(f"capture: {args.capture}")
    return EXIT_OK


def _probe_info(args: argparse.Namespace) -> dict[str, object]:
    """What the user chose to say about their network: never an address."""
    if args.probe_asn is not None and not 0 < args.probe_asn <= MAX_ASN:
        raise InputError(f"--probe-asn: expected an AS number from 1 to {MAX_ASN}, got {args.probe_asn}")
    if args.probe_cc is not None and not (len(args.probe_cc) == 2 and args.probe_cc.isalpha()):
        raise InputError(f"--probe-cc: expected a two-letter country code, got {args.probe_cc!r}")
    return {"asn": args.probe_asn, "cc": args.probe_cc.upper() if args.probe_cc else None}


def _show_report(report: dict, path: Path, args: argparse.Namespace) -> None:
    if args.json:
        ui.plain(json.dumps(report, ensure_ascii=False))
    elif args.quiet:
        ui.plain(str(path))
    else:
        ui.summary(report, str(path))


def _run_one(testlist: TestList, setup: RunSetup) -> tuple[dict, Path]:
    clock = Clock()
    started = datetime.now(UTC)
    stem = free_stem(setup.output_dir, report_stem(started, testlist.name))
    journal = Journal.open(journal_path(setup.output_dir, stem))
    measurer = Measurer(setup.settings, Dialer(setup.allow), clock, setup.trust,
                        dict(testlist.keys))
    total = len(testlist.controls) + sum(len(f.targets) for f in testlist.features)

    with journal, ui.run_display(testlist.name, total, setup.show_progress) as display:

        def finished(result: TargetResult) -> None:
            journal.append(result)
            display.target_done(result)

        result = asyncio.run(
            run_testlist(
                testlist, measurer, setup.options, on_result=finished, on_controls=display.controls_done
            )
        )
    report = report_of_run(
        testlist,
        result,
        started=started,
        finished=datetime.now(UTC),
        source={"kind": "live"},
        probe_info=setup.probe_info,
        config=setup.config(),
    )
    signed = sign_report(report, setup.key)
    path = write_report_atomic(signed, setup.output_dir, stem)
    # Only now is everything the journal held safely in the report.
    journal.remove()
    return signed, path


# --------------------------------------------------------------------------
# probe replay


def cmd_replay(args: argparse.Namespace) -> int:
    if args.testlist is None:
        return _replay_account(args)
    testlist = load_testlist(args.testlist)
    key = load_or_create_key()
    # A key file (a lab's), then the keys given one by one.
    vpn_keys = (read_vpn_keys(args.vpn_keys) if args.vpn_keys else {}) | dict(
        parse_vpn_key(text) for text in args.vpn_key
    )
    replayed = replay_report(
        args.pcap, testlist, keylog=args.keylog, probe_info=_probe_info(args),
        overrides=_prefix_overrides(args), ca_bundle=args.ca_bundle, vpn_keys=vpn_keys,
    )
    for warning in replayed.warnings:
        ui.warning(warning)
    signed = sign_report(replayed.report, key)
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output-dir {args.output_dir}: {exc.strerror}") from None
    stem = free_stem(args.output_dir, report_stem(replayed.started, testlist.name))
    path = write_report_atomic(signed, args.output_dir, stem)
    _show_report(signed, path, args)
    return EXIT_OK


def _replay_account(args: argparse.Namespace) -> int:
    """No list: say what happened in the capture, one line per flow."""
    if args.json:
        summary = flow_account(args.pcap, lambda e: ui.plain(json.dumps(e.to_dict())), keylog=args.keylog)
    else:
        summary = flow_account(args.pcap, lambda e: ui.plain(f"{e.t:10.6f} {e.summary}"), keylog=args.keylog)
    for warning in summary.warnings:
        ui.warning(warning)
    if not args.json:
        ui.plain(f"{summary.packets} packets ({summary.format}), {summary.duration:.3f} s")
    return EXIT_OK


# --------------------------------------------------------------------------
# probe lab: a command of another distribution


# How to get each command that ships in a distribution of its own.
_PLUGIN_INSTALL = {
    "lab": "the lab is not installed: from a checkout of the probe, run pip install '.[lab]' "
    "(it needs root and Debian packages: then probe lab doctor)",
}


def cmd_plugin(name: str) -> Callable[[argparse.Namespace], int]:
    """Hand ``probe NAME ARGS...`` to the ``main`` a ``probe.commands`` entry
    point names, importing it only now: the probe never imports the lab."""

    def run(args: argparse.Namespace) -> int:
        found = entry_points(group="probe.commands", name=name)
        if not found:
            raise InputError(_PLUGIN_INSTALL[name])
        plugin_main = next(iter(found)).load()
        return int(plugin_main(list(getattr(args, f"{name}_args"))))

    return run


# --------------------------------------------------------------------------
# probe verify / diff / keys / lists


def cmd_verify(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for name in args.reports:
        if not Path(name).is_file():
            # Nothing to judge: an input error, not an invalid report.
            ui.error(f"{name}: no such file")
            status = EXIT_INPUT
            continue
        result = verify_file(Path(name), expected_key_id=args.key_id)
        if args.json:
            ui.plain(json.dumps({"report": name, "valid": result.valid, "key_id": result.key_id,
                                 "reason": result.reason}, ensure_ascii=False))
        else:
            ui.verification(result.valid, result.key_id, result.reason, name)
        if not result.valid:
            status = max(status, EXIT_FOUND)
    return status


def cmd_diff(args: argparse.Namespace) -> int:
    before = load_report(args.before)
    after = load_report(args.after)
    difference = diff_reports(before, after)
    if args.json:
        ui.plain(json.dumps(difference.to_dict(), ensure_ascii=False, indent=2))
    else:
        ui.diff_table(difference.to_dict()["changes"], args.before.name, args.after.name)
    return EXIT_FOUND if difference.changed else EXIT_OK


def cmd_keys_show(args: argparse.Namespace) -> int:
    _show_key(key_info(load_key()), args)
    return EXIT_OK


def cmd_keys_generate(args: argparse.Namespace) -> int:
    _show_key(key_info(generate_key(force=args.force)), args)
    return EXIT_OK


def _show_key(info: KeyInfo, args: argparse.Namespace) -> None:
    if args.json:
        ui.plain(json.dumps(info._asdict()))
    else:
        ui.key_info(*info)


def cmd_completion(args: argparse.Namespace) -> int:
    ui.plain(argcomplete.shellcode(["probe"], shell=args.shell))
    return EXIT_OK


def cmd_lists_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.lists:
        try:
            testlist = load_testlist(path)
        except TestListError as exc:
            if args.json:
                ui.plain(json.dumps({"list": path, "ok": False, "error": str(exc), "line": exc.line,
                                     "column": exc.column}, ensure_ascii=False))
            else:
                ui.error(str(exc))
            status = EXIT_INPUT
            continue
        count = sum(len(f.targets) for f in testlist.features)
        if args.json:
            ui.plain(json.dumps({"list": path, "ok": True, "name": testlist.name,
                                 "features": len(testlist.features), "targets": count,
                                 "controls": len(testlist.controls)}, ensure_ascii=False))
        else:
            ui.plain(f"{path}: ok ({len(testlist.features)} features, {count} targets, {len(testlist.controls)} controls)")
    return status


if __name__ == "__main__":
    sys.exit(main())
