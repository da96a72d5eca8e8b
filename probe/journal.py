"""The run journal: finished targets on disk before the report exists.

While a run is going, every finished target is appended to
``<report stem>.journal.jsonl`` next to where the report will go, one JSON
object per line (JSON Lines), flushed and fsynced line by line:

    {"target": "<target id>", "feature": "<feature id>", "observations": [...]}

Observations use the report's layout (``probe.serialize``); verdicts are
not journaled because the classifier re-derives them from observations.
A killed run leaves at most its last line torn: a line counts once its
newline is on disk, and ``read_journal`` drops an unterminated tail. The
journal is removed once the report has been written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from probe.errors import InputError
from probe.files import fsync_directory
from probe.model import Observation, Target
from probe.serialize import SerializeError, observation_to_dict, observations_from_list

JOURNAL_SUFFIX = ".journal.jsonl"


class JournalError(InputError):
    """A journal that cannot be opened or read; one line, file:line first."""


class ResultLike(Protocol):
    """What the journal needs of a finished target (``TargetResult`` fits)."""

    @property
    def target(self) -> Target: ...
    @property
    def feature(self) -> str: ...
    @property
    def observations(self) -> Sequence[Observation]: ...


@dataclass(frozen=True, slots=True)
class JournalEntry:
    target: str  # target id
    feature: str
    observations: tuple[Observation, ...]


def journal_path(directory: Path, stem: str) -> Path:
    return directory / f"{stem}{JOURNAL_SUFFIX}"


class Journal:
    """An append-only journal file; use ``Journal.open``."""

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Create the journal; refuses to append to an existing one.

        Appending to a journal a killed run left behind would glue our first
        line to its torn last one.
        """
        try:
            file = open(path, "xb")  # noqa: SIM115 - closed by close()
        except FileExistsError:
            raise JournalError(
                f"{path}: a journal already exists (from an interrupted run?); move it away"
            ) from None
        except OSError as exc:
            raise JournalError(f"{path}: cannot create the journal: {exc.strerror}") from None
        fsync_directory(path.parent)  # so the file's name survives a crash too
        return cls(path, file)

    def append(self, result: ResultLike) -> None:
        entry = {
            "target": result.target.id,
            "feature": result.feature,
            "observations": [observation_to_dict(o) for o in result.observations],
        }
        # json.dumps escapes control characters, so the only b"\n" is ours.
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        self._file.write(line.encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def remove(self) -> None:
        """Close and delete: the report now holds everything."""
        self.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_journal(path: Path) -> list[JournalEntry]:
    """The complete entries of a journal, in the order they were written."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror}") from None
    lines = data.split(b"\n")
    lines.pop()  # b"" after a final newline, else the torn line of a killed run
    return [_entry(line, path, number) for number, line in enumerate(lines, 1)]


def _entry(line: bytes, path: Path, number: int) -> JournalEntry:
    try:
        value: Any = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JournalError(f"{path}:{number}: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise JournalError(f"{path}:{number}:{exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise JournalError(f"{path}:{number}: nested too deeply") from None
    try:
        if not isinstance(value, dict):
            raise SerializeError("$: expected an object")
        target, feature = value.get("target"), value.get("feature")
        for name, member in (("target", target), ("feature", feature)):
            if not isinstance(member, str):
                raise SerializeError(f"$.{name}: expected a string")
        observations = observations_from_list(value.get("observations"), "$.observations")
    except SerializeError as exc:
        raise JournalError(f"{path}:{number}: {exc}") from None
    return JournalEntry(target, feature, observations)
