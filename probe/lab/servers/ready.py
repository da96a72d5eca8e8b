"""The one-line readiness handshake between the lab and the processes it starts.

A server prints ``ready`` on stdout once it listens; the lab waits for that
line (with a timeout) before the probe starts, so no check meets a port
that is not open yet. :func:`wait_for_text` is the general form, for
programs that announce themselves otherwise (tcpdump's "listening on").
"""

from __future__ import annotations

import selectors
import subprocess
import time
from typing import IO

__all__ = ["READY", "announce_ready", "wait_for_text", "wait_ready"]

READY = "ready"


def announce_ready() -> None:
    print(READY, flush=True)


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
