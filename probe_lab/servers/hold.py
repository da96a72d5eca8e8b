"""A TCP service that accepts connections and holds them open, saying nothing.

Stands for servers whose protocol the probe does not speak (WhatsApp's
chat servers on 5222, a VPN provider's API port): the probe's TCP check
only needs the handshake to complete. Run inside the server namespace::

    python -m probe_lab.servers.hold --port 5222 [--port 9001 ...]

It listens on every address of the namespace, IPv4 and IPv6, and prints
``ready`` on stdout once every port is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from probe_lab.servers.ready import announce_ready, run_until_stopped

__all__ = ["main"]

# Long enough for any check, short enough that a forgotten client goes away.
_HOLD = 120.0


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        # Read (and discard) until the client closes or the time is up.
        async with asyncio.timeout(_HOLD):
            while await reader.read(4096):
                pass
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(ports: Sequence[int]) -> None:
    for port in ports:
        # host=None binds the wildcard of both families (IPv6 with V6ONLY).
        await asyncio.start_server(_hold, None, port)
    announce_ready()
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m probe_lab.servers.hold",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, action="append", required=True)
    args = parser.parse_args(argv)
    return run_until_stopped("hold", serve(args.port))


if __name__ == "__main__":
    sys.exit(main())
