"""How the lab knows the processes it starts are up.

A server of ours prints ``ready`` on stdout once it listens; the lab waits
for that line (with a timeout) before the probe starts, so no check meets a
port that is not open yet. :func:`wait_for_text` is the general form, for
programs that announce themselves otherwise (tcpdump's "listening on").
For daemons that say nothing, :func:`listening` reads ``ss`` output.
"""

from __future__ import annotations

import asyncio
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Coroutine
from typing import IO, Any

__all__ = ["READY", "announce_ready", "listening", "run_until_stopped", "wait_for_text", "wait_ready"]

READY = "ready"
_PIDS = re.compile(r"\bpid=(\d+)")


def announce_ready() -> None:
    print(READY, flush=True)


def run_until_stopped(name: str, server: Coroutine[Any, Any, None]) -> int:
    """Run one of our servers (which announces itself) until it is stopped:
    the exit status, 1 with a line on stderr when it cannot listen."""
    try:
        asyncio.run(server)
    except OSError as exc:  # ssl.SSLError too: a certificate that does not load
        print(f"{name} server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def wait_ready(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``process`` said ``ready`` on its stdout within ``timeout`` seconds."""
    assert process.stdout is not None
    return wait_for_text(process.stdout, f"{READY}\n".encode(), timeout)


def wait_for_text(stream: IO[bytes], text: bytes, timeout: float) -> bool:
    """Whether ``text`` appears on ``stream`` within ``timeout`` seconds (False at EOF)."""
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while text not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return False
            chunk = stream.read1(256)  # type: ignore[attr-defined]
            if not chunk:  # the process exited
                return False
            seen += chunk
    return True


def listening(ss_output: str) -> set[tuple[str, int, int]]:
    """(protocol, port, pid) of every socket in ``ss -Hltunp`` output: TCP
    listeners and bound UDP sockets, whatever their address, with each
    process that holds one (so a port some other process holds does not
    count for the server being waited for)."""
    found: set[tuple[str, int, int]] = set()
    for line in ss_output.splitlines():
        # Netid State Recv-Q Send-Q Local:Port Peer:Port users:(("name",pid=N,fd=M),...)
        fields = line.split(maxsplit=6)
        if len(fields) < 7 or fields[0] not in ("tcp", "udp"):
            continue
        port = fields[4].rsplit(":", 1)[-1]
        if port.isdigit():
            found.update((fields[0], int(port), int(pid)) for pid in _PIDS.findall(fields[6]))
    return found
