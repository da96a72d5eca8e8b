"""One server of the lab: its command line, and how the lab knows it is up.

Every server is a process in the server namespace with one log file,
``<name>.log`` in the servers' directory (its stdout and stderr, unless it
announces itself on stdout, see :mod:`probe_lab.servers.ready`). The lab
knows a server is up when it printed ``ready``, when ``ss`` shows its
ports, and after its ``configure`` step (a daemon that takes its settings
over a control socket once it runs) has succeeded.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from probe_lab.topology import LabError

__all__ = ["Configure", "Service", "keep_trying", "log_tail", "server_error"]

# A step run once the process is started: it gets the process and the
# time.monotonic() deadline, and raises LabError when it cannot finish.
Configure = Callable[[subprocess.Popen[bytes], float], None]


@dataclass(frozen=True, slots=True)
class Service:
    name: str  # in error messages, and the stem of its log file
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # added to the lab's environment
    says_ready: bool = False  # prints "ready" on stdout once it listens
    tcp: tuple[int, ...] = ()  # ports it listens on, watched with `ss`
    udp: tuple[int, ...] = ()
    configure: Configure | None = None


def keep_trying(attempt: Callable[[], bool], process: subprocess.Popen[bytes],
                deadline: float) -> bool:
    """Whether ``attempt`` succeeds before the deadline (time.monotonic())
    and while ``process`` runs; it is tried again every 10 ms."""
    while not attempt():
        if process.poll() is not None or time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def log_tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log on one line: what a failed server said last."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    tail = [" ".join(line.split()) for line in text if line.strip()][-lines:]
    return " | ".join(tail) if tail else "no output"


def server_error(name: str, what: str, log: Path) -> LabError:
    """The one-line error for a server that failed: what went wrong, what it said last."""
    return LabError(f"the lab's {name} server {what}: {log_tail(log)}")
