"""Put a censor config to work in a lab's censor namespace, and take it away again."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from probe.errors import InputError
from probe_lab.censor.config import CensorConfig, to_data
from probe_lab.censor.rules import (
    CLIENT_IF,
    TABLE,
    ZoneError,
    resolve_names,
    ruleset,
    tc_commands,
    tc_teardown,
)
from probe_lab.servers.ready import wait_ready
from probe_lab.topology import LabNet, child_env, popen_in, run_in

__all__ = ["CensorError", "CensorHandle", "apply_censor"]

# The daemon imports little; this is room for a slow CI machine.
_READY_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0


class CensorError(InputError):
    """The censor could not be set up; one line."""


@dataclass
class CensorHandle:
    """A running censor; :meth:`stop` (or leaving a ``with`` block) removes all of it."""

    net: LabNet
    config: CensorConfig
    workdir: Path
    log: Path  # the inspector's log, when it runs
    daemon: subprocess.Popen[bytes] | None = None
    stopped: bool = field(default=False, init=False)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        # Either may be absent already (a half-applied censor): no complaint.
        for argv in [["nft", "delete", "table", "inet", TABLE], *tc_teardown(self.config)]:
            run_in(self.net.censor_ns, argv, capture_output=True, check=False)

    def __enter__(self) -> CensorHandle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def apply_censor(net: LabNet, config: CensorConfig, workdir: Path | None = None) -> CensorHandle:
    """Start the inspector (when the config needs one), then load the rules and qdiscs.

    ``workdir`` holds the daemon's config file and log (default: a new
    temporary directory named after the lab). Raises :class:`CensorError`
    and leaves nothing behind when any step fails.
    """
    try:
        rules = ruleset(config, net)
    except ZoneError as exc:
        raise CensorError(str(exc)) from None
    present = run_in(net.censor_ns, ["nft", "list", "table", "inet", TABLE], capture_output=True)
    if present.returncode == 0:
        # nft would merge a second ruleset into the first; two inspectors would both answer.
        raise CensorError(f"censor: {net.censor_ns} has a censor already; stop it first")
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"{net.prefix}-censor-"))
    handle = CensorHandle(net, config, workdir, workdir / "censor.log")
    try:
        if config.needs_daemon:
            handle.daemon = _start_daemon(net, resolve_names(config, net), workdir, handle.log)
        _run(net, ["nft", "-f", "-"], rules)
        for argv in tc_commands(config):
            _run(net, argv)
    except BaseException:
        handle.stop()
        raise
    return handle


def _run(net: LabNet, argv: list[str], stdin: str | None = None) -> None:
    done = run_in(net.censor_ns, argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode:
        first = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()[0]
        raise CensorError(f"censor: {argv[0]} {argv[1]} failed in {net.censor_ns}: {first}")


def _start_daemon(
    net: LabNet, config: CensorConfig, workdir: Path, log: Path
) -> subprocess.Popen[bytes]:
    settings = workdir / "censor.json"
    settings.write_text(
        json.dumps({"interface": CLIENT_IF, "log": str(log), "censor": to_data(config)}, indent=2)
    )
    env = child_env()
    argv = [sys.executable, "-m", "probe_lab.censor.daemon", "--config", str(settings)]
    with open(log, "ab") as errors:
        daemon = popen_in(net.censor_ns, argv, stdout=subprocess.PIPE, stderr=errors, env=env)
    if not wait_ready(daemon, _READY_TIMEOUT):
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait()
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise CensorError(f"censor: the inspector did not start in {net.censor_ns}: {tail[0]}")
    return daemon
