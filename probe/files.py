"""Files written whole or not at all, and readable by their owner only.

Reports, the signing key, TLS key logs and VPN key files are the user's to
share or not, so every one of them goes through :func:`write_private`: the
data goes to a temp file in the target's directory, created 0600 with
O_EXCL (never another user's file, never readable by anyone else, not even
while half written; the rename stays on one file system), is fsynced, and
only then takes its name: ``os.replace`` (atomic on POSIX), or ``os.link``
where an existing file must not be clobbered. The directory is fsynced last,
so the name survives a crash as well as the data.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["fsync_directory", "write_private"]


def write_private(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Give ``path`` the content ``data``, mode 0600, atomically.

    ``replace=False``: FileExistsError when ``path`` exists (another
    process's file is never overwritten). Other failures are OSError; the
    temp file never outlives the call.
    """
    temp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # the umask may have cleared our own bits
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
