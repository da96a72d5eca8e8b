"""The lab's real servers, started in the server namespace and stopped with the lab.

* DNS: :mod:`probe.lab.servers.dns` on 203.0.113.53 and 2001:db8:5::53,
  UDP and TCP port 53, answering the scenario's zone.
* HTTP/HTTPS: nginx on ports 80 and 443 of every address, plus the
  interception server on :data:`INTERCEPT_PORT` (:mod:`probe.lab.servers.web`).
* TCP services that only accept: :mod:`probe.lab.servers.hold` on
  :data:`HOLD_PORTS` (WhatsApp's 5222, RiseupVPN's 9001).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from probe.lab.certs import LabCerts
from probe.lab.servers.ready import wait_ready
from probe.lab.servers.web import INTERCEPT_PORT, nginx_argv, nginx_config
from probe.lab.topology import LabError, LabNet, popen_in, run_in
from probe.lab.zone import Zone

__all__ = ["HOLD_PORTS", "INTERCEPT_PORT", "LabServers", "start_servers"]

HOLD_PORTS = (5222, 9001)
_START_TIMEOUT = 10.0
_WEB_PORTS = (80, 443, INTERCEPT_PORT)
# Our own servers print "ready" (probe.lab.servers.ready); nginx is watched via its ports.
_SAYS_READY = ("dns", "hold")


@dataclass(frozen=True, slots=True)
class LabServers:
    """The server processes of one lab, each with its log file."""

    processes: tuple[tuple[str, subprocess.Popen[bytes]], ...]
    directory: Path

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
        for _, process in self.processes:
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def failed(self) -> str | None:
        """Which server died (with the end of its log), or None while all run."""
        for name, process in self.processes:
            if process.poll() is not None:
                return f"the lab's {name} server exited: {_log_tail(self.directory / f'{name}.log')}"
        return None


def start_servers(net: LabNet, zone: Zone, certs: LabCerts, directory: Path) -> LabServers:
    """Start every server in ``net.server_ns``; returns once all of them listen.

    Raises :class:`LabError` (after stopping what did start) when one
    does not come up in time.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    zone_file = directory / "zone.json"
    zone_file.write_text(zone.to_json())
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, certs))
    try:
        web = nginx_argv(config)
    except LookupError as exc:
        raise LabError(str(exc)) from None
    python = [sys.executable, "-m"]
    commands = {
        "dns": [*python, "probe.lab.servers.dns", "--zone", str(zone_file)],
        "hold": [*python, "probe.lab.servers.hold", *(f"--port={p}" for p in HOLD_PORTS)],
        "web": web,
    }
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, argv in commands.items():
            started.append((name, _spawn(net, name, argv, directory)))
        servers = LabServers(tuple(started), directory)
        for name, process in started:
            if name in _SAYS_READY and not wait_ready(process, _START_TIMEOUT):
                raise LabError(servers.failed() or f"the lab's {name} server did not start in time")
        _wait_listening(net, servers, _WEB_PORTS)
    except BaseException:
        LabServers(tuple(started), directory).stop()
        raise
    return servers


def _spawn(net: LabNet, name: str, argv: Sequence[str], directory: Path) -> subprocess.Popen[bytes]:
    with open(directory / f"{name}.log", "ab") as log:
        return popen_in(net.server_ns, argv, stdout=subprocess.PIPE, stderr=log,
                        stdin=subprocess.DEVNULL)


def _wait_listening(net: LabNet, servers: LabServers, ports: Sequence[int]) -> None:
    """nginx has no readiness line: poll the namespace's listening sockets."""
    wanted = {str(p) for p in ports}
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        listing = run_in(net.server_ns, ["ss", "-Hltn"], capture_output=True, text=True).stdout
        listening = {line.split()[3].rsplit(":", 1)[-1] for line in listing.splitlines() if line.split()}
        if wanted <= listening:
            return
        if failure := servers.failed():
            raise LabError(failure)
        time.sleep(0.05)
    raise LabError(f"the lab's web server did not listen on {sorted(wanted)} in time")


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " ".join(lines[-1].split()) if lines else "no output"
