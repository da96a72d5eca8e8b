"""Sans-I/O codecs: bytes in, frozen dataclasses out.

Nothing here opens a socket or reads a clock (modelled on h11), and only
the standard library is imported, with two exceptions: the VPN codecs
(``openvpn``, ``wireguard``) use ``cryptography`` for what hashlib and hmac
lack (X25519, ChaCha20-Poly1305, AES-CTR), and ``url`` uses ``idna`` for
IDNA 2008 host names, as the live HTTP client does. Every parser raises
only :class:`WireError` on hostile or malformed bytes, which the
Hypothesis tests in ``tests/wire/`` check.
"""

from __future__ import annotations

from probe.wire.cursor import WireError

__all__ = ["WireError"]
