from __future__ import annotations

import json
from pathlib import Path

import archive_samples as samples
import pytest

from probe.journal import (
    Journal,
    JournalEntry,
    JournalError,
    journal_path,
    read_journal,
)


def entries_of(results: tuple) -> list[JournalEntry]:  # type: ignore[type-arg]
    return [JournalEntry(r.target.id, r.feature, r.observations) for r in results]


def write_journal(tmp_path: Path) -> Path:
    path = journal_path(tmp_path, "20261123T101500Z-example")
    with Journal.open(path) as journal:
        for result in samples.RESULTS:
            journal.append(result)
    return path


def test_journal_path() -> None:
    assert journal_path(Path("out"), "stem") == Path("out/stem.journal.jsonl")


def test_round_trip(tmp_path: Path) -> None:
    path = write_journal(tmp_path)
    assert read_journal(path) == entries_of(samples.RESULTS)


def test_one_json_object_per_line(tmp_path: Path) -> None:
    lines = write_journal(tmp_path).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == len(samples.RESULTS) + 1
    first = json.loads(lines[0])
    assert list(first) == ["target", "feature", "observations"]
    assert (first["target"], first["feature"]) == ("tls-media", "messaging")
    assert first["observations"][2]["kind"] == "tls"


def test_each_line_is_on_disk_before_append_returns(tmp_path: Path) -> None:
    path = tmp_path / "j.journal.jsonl"
    journal = Journal.open(path)
    journal.append(samples.RESULTS[0])
    # Read while the journal is still open, as after a kill -9.
    assert read_journal(path) == entries_of(samples.RESULTS[:1])
    journal.append(samples.RESULTS[1])
    assert read_journal(path) == entries_of(samples.RESULTS[:2])
    journal.close()


def test_torn_last_line_is_dropped(tmp_path: Path) -> None:
    path = write_journal(tmp_path)
    data = path.read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    # Cut the last line anywhere, including just before its newline.
    for cut in range(last_start, len(data)):
        path.write_bytes(data[:cut])
        assert read_journal(path) == entries_of(samples.RESULTS[:-1]), cut


def test_empty_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.journal.jsonl"
    Journal.open(path).close()
    assert read_journal(path) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json}", r":2:2: Expecting property name enclosed in double quotes$"),
        (b"[1]", r":2: \$: expected an object$"),
        (b'{"target": 1, "feature": "f", "observations": []}', r":2: \$\.target: expected a string$"),
        (b'{"target": "t", "feature": "f"}', r":2: \$\.observations: expected a list, got null$"),
        (b'{"target": "t", "feature": "f", "observations": [{"kind": "tcp"}]}', r":2: \$\.observations\[0\]\.address: missing$"),
        (b'{"target": "t", "feature": "f", "observations": [{"kind": "tcp", "address": "a", "port": 1, "t0": NaN, "t": 1, "failure": null}]}', r":2: \$\.observations\[0\]\.t0: expected a number"),
        (b'"\xff"', r":2: not UTF-8 \(byte 1\)$"),
        (b"[" * 100000, r":2: nested too deeply$|:2:\d+: "),
    ],
)
def test_damage_before_the_last_line_is_an_error(tmp_path: Path, line: bytes, message: str) -> None:
    path = write_journal(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[1] = line
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match=r"^" + str(path).replace(".", r"\.") + message) as caught:
        read_journal(path)
    assert "\n" not in str(caught.value)


def test_open_refuses_an_existing_journal(tmp_path: Path) -> None:
    path = write_journal(tmp_path)
    before = path.read_bytes()
    with pytest.raises(JournalError, match="a journal already exists"):
        Journal.open(path)
    assert path.read_bytes() == before


def test_open_in_a_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"cannot create the journal: No such file or directory$"):
        Journal.open(tmp_path / "absent" / "j.journal.jsonl")


def test_read_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"cannot read the journal: No such file or directory$"):
        read_journal(tmp_path / "absent.journal.jsonl")


def test_remove_after_the_report_is_written(tmp_path: Path) -> None:
    path = tmp_path / "j.journal.jsonl"
    journal = Journal.open(path)
    journal.append(samples.RESULTS[0])
    journal.remove()
    assert not path.exists()
    journal.remove()  # idempotent: a second call does no harm
