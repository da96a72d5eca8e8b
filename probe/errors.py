"""The one kind of input error, and the exit codes the command line maps errors to.

Every loader (test lists, reports, keys, captures, journals, command-line
values, and the lab's scenarios and censor configs) raises :class:`InputError`
or a subclass naming what it loads. The command line prints it as one line
and exits with :data:`EXIT_INPUT`; anything else that escapes a command is a
bug in the probe, printed as one line that says so, with :data:`EXIT_BUG`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXIT_BUG", "EXIT_FOUND", "EXIT_INPUT", "EXIT_OK", "InputError"]

EXIT_OK = 0  # a run finished, a report is valid, two reports are the same
EXIT_FOUND = 1  # verification failed, a diff found changes, the lab differs from its scenario
EXIT_INPUT = 2  # usage or input error: the user can fix it
EXIT_BUG = 3  # an internal error: a bug in the probe (run again with --debug to see it)


class InputError(Exception):
    """Bad input, said in one line: ``FILE:LINE:COL: message`` when the
    position is known, ``FILE: message`` when only the file is, else the message.

    Lines and columns count from 1. Whitespace runs in the message become
    single spaces: quoted values may hold newlines, and editors and CI
    annotations rely on the one-line form.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = " ".join(message.split())
        self.file = None if file is None else str(file)
        self.line = line
        self.column = column
        where = ":".join(str(part) for part in (self.file, line, column) if part is not None)
        super().__init__(f"{where}: {self.message}" if where else self.message)
