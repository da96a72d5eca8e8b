"""Sans-I/O codecs: bytes in, frozen dataclasses out.

Nothing here opens a socket, reads a clock or imports anything outside the
standard library (modelled on h11). Every parser raises only
:class:`WireError` on hostile or malformed bytes, which the Hypothesis tests
in ``tests/wire/`` check.
"""

from __future__ import annotations

from probe.wire.cursor import WireError

__all__ = ["WireError"]
