"""The lab's real servers, started in the server namespace and stopped with the lab.

* DNS: :mod:`probe_lab.servers.dns` on 203.0.113.53 and 2001:db8:5::53,
  UDP and TCP port 53, answering the scenario's zone.
* HTTP/HTTPS: nginx on ports 80 and 443 of every address, plus the
  interception server on :data:`INTERCEPT_PORT` (:mod:`probe_lab.servers.web`).
* TCP services that only accept: :mod:`probe_lab.servers.hold` on
  :data:`HOLD_PORTS` (WhatsApp's 5222, RiseupVPN's 9001).
* VPN servers on every address: OpenVPN, WireGuard, IKEv2, PPTP, L2TP and
  SSTP (:mod:`probe_lab.servers.vpn`).

They all start at once; :func:`start_servers` then waits for each to be up.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from probe_lab.certs import LabCerts
from probe_lab.servers.ready import listening, wait_ready
from probe_lab.servers.service import Service, log_tail, server_error
from probe_lab.servers.vpn import VPNLab, redirect_ruleset, vpn_services
from probe_lab.servers.web import INTERCEPT_PORT, nginx_argv, write_site
from probe_lab.topology import LabError, LabNet, child_env, popen_in, run_in
from probe_lab.zone import Zone

__all__ = ["HOLD_PORTS", "INTERCEPT_PORT", "LabServers", "VPNLab", "start_servers"]

HOLD_PORTS = (5222, 9001)
_START_TIMEOUT = 10.0
_EXIT_GRACE = 1.0  # seconds for a server that gave up to exit, so its status can be read
_WEB_PORTS = (80, 443, INTERCEPT_PORT)


@dataclass(frozen=True, slots=True)
class LabServers:
    """The server processes of one lab, each with its log file."""

    processes: tuple[tuple[str, subprocess.Popen[bytes]], ...]
    directory: Path
    vpn: VPNLab

    def stop(self) -> None:
        _stop(self.processes)

    def failed(self) -> str | None:
        """Which server died (with the end of its log), or None while all run."""
        for name, process in self.processes:
            if (status := process.poll()) is not None:
                return (f"the lab's {name} server exited (status {status}): "
                        f"{log_tail(self.directory / f'{name}.log')}")
        return None


def start_servers(net: LabNet, zone: Zone, certs: LabCerts, directory: Path,
                  sstp_addresses: Sequence[str] = ()) -> LabServers:
    """Start every server in ``net.server_ns``; returns once all of them are up.

    TCP 443 to ``sstp_addresses`` reaches the SSTP responder instead of
    nginx. Raises :class:`LabError` (after stopping what did start) when
    one does not come up in time, naming it with the end of its log.
    """
    directory.mkdir(parents=True, exist_ok=True)
    try:
        redirect = redirect_ruleset(sstp_addresses) if sstp_addresses else None
    except ValueError as exc:
        raise LabError(f"SSTP addresses: {exc}") from None
    try:
        vpn, vpn_servers = vpn_services(directory, certs, net.server_ns)
        services = (*_base_services(zone, certs, directory), *vpn_servers)
    except LookupError as exc:
        raise LabError(str(exc)) from None
    started: list[tuple[Service, subprocess.Popen[bytes]]] = []
    try:
        for service in services:
            started.append((service, _spawn(net, service, directory)))
        servers = LabServers(tuple((s.name, p) for s, p in started), directory, vpn)
        if redirect is not None:
            _nft(net, redirect)
        _wait_up(net, servers, started, time.monotonic() + _START_TIMEOUT)
    except BaseException:
        _stop(tuple((s.name, p) for s, p in started))
        raise
    return servers


def _base_services(zone: Zone, certs: LabCerts, directory: Path) -> tuple[Service, ...]:
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    zone_file = directory / "zone.json"
    zone_file.write_text(zone.to_json())
    config = write_site(directory, certs)
    python = (sys.executable, "-m")
    return (
        Service("dns", (*python, "probe_lab.servers.dns", "--zone", str(zone_file)),
                says_ready=True),
        Service("hold", (*python, "probe_lab.servers.hold", *(f"--port={p}" for p in HOLD_PORTS)),
                says_ready=True),
        # nginx has no readiness line: its ports are watched.
        Service("web", tuple(nginx_argv(config)), tcp=_WEB_PORTS),
    )


def _spawn(net: LabNet, service: Service, directory: Path) -> subprocess.Popen[bytes]:
    # stdout is a pipe only for the "ready" line; any other server writes
    # both streams to its log, so a chatty one never blocks on a full pipe.
    with open(directory / f"{service.name}.log", "ab") as log:
        return popen_in(net.server_ns, service.argv,
                        stdout=subprocess.PIPE if service.says_ready else log, stderr=log,
                        stdin=subprocess.DEVNULL, env=child_env(**dict(service.env)))


def _wait_up(net: LabNet, servers: LabServers,
             started: Sequence[tuple[Service, subprocess.Popen[bytes]]], deadline: float) -> None:
    """Configuration steps, ready lines, then listening ports, in one deadline."""
    log = servers.directory
    for service, process in started:
        if service.configure is not None:
            try:
                service.configure(process, deadline)
            except LabError as exc:
                raise _died(servers) or exc from None
    for service, process in started:
        if service.says_ready and not wait_ready(process, max(0.0, deadline - time.monotonic())):
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_EXIT_GRACE)  # stdout closed: it is exiting
            raise _died(servers) or server_error(service.name, "did not start in time",
                                                 log / f"{service.name}.log")
    # The server's own process must hold each port: a port that something
    # else holds would hide a server that failed to bind it.
    wanted = {(proto, port, process.pid): service for service, process in started
              for proto, ports in (("tcp", service.tcp), ("udp", service.udp)) for port in ports}
    while True:
        missing = set(wanted) - listening(_ss(net))
        if not missing:
            return
        if died := _died(servers):
            raise died
        if time.monotonic() >= deadline:
            proto, port, pid = min(missing)
            service = wanted[proto, port, pid]
            raise server_error(service.name, f"did not listen on {proto} {port} in time",
                               log / f"{service.name}.log")
        time.sleep(0.02)


def _died(servers: LabServers) -> LabError | None:
    # A server that exited says more than a step that waited for it.
    failure = servers.failed()
    return LabError(failure) if failure else None


def _ss(net: LabNet) -> str:
    return run_in(net.server_ns, ["ss", "-Hltunp"], capture_output=True, text=True).stdout


def _nft(net: LabNet, ruleset: str) -> None:
    result = run_in(net.server_ns, ["nft", "-f", "-"], input=ruleset, capture_output=True,
                    text=True, check=False)
    if result.returncode:
        raise LabError(f"the SSTP redirect: {' '.join(result.stderr.split())}")


def _stop(processes: Iterable[tuple[str, subprocess.Popen[bytes]]]) -> None:
    processes = tuple(processes)
    for _, process in processes:
        if process.poll() is None:
            process.terminate()
    for _, process in processes:
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
