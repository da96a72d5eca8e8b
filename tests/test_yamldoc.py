"""probe.yamldoc, the one reader of YAML inputs: the caller's error class with
file, line and column; hostile bytes refused; plain data and its positions."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.nodes import Node

from probe.errors import InputError
from probe.yamldoc import Document, locate


class DemoError(InputError):
    """What a loader declares: every complaint comes out as this class."""


def parsed(text: str) -> tuple[Document, Node]:
    doc = Document("d.yaml", DemoError)
    return doc, doc.parse(text.encode("utf-8"))


def test_a_complaint_is_the_declared_class_with_file_line_and_column() -> None:
    doc, root = parsed("a: [1, x]\n")
    items = doc.sequence(doc.mapping(root, "a document")["a"].value, "'a'")
    with pytest.raises(DemoError) as caught:
        doc.integer(items[1], "an item", 0, 9)
    assert (caught.value.file, caught.value.line, caught.value.column) == ("d.yaml", 1, 8)
    assert str(caught.value) == "d.yaml:1:8: an item must be an integer, not a string"


def test_a_file_that_cannot_be_read_is_a_complaint_at_1_1(tmp_path: Path) -> None:
    with pytest.raises(DemoError) as caught:
        Document(str(tmp_path), DemoError).read(tmp_path)
    assert str(caught.value) == f"{tmp_path}:1:1: cannot read file: Is a directory"


@pytest.mark.parametrize(("data", "line", "column", "message"), [
    (b"a: 1\nb: \x00\n", 2, 4, "YAML error: character U+0000 is not allowed"),
    (b"a: 1\n\xff", 2, 1, "not UTF-8 text"),
    (b"[" * 3000, 1, 1, "YAML error: nesting too deep"),
    (b"a: 1\n---\nb: 2\n", 2, 1, "YAML error: expected a single document in the stream, but found another document"),
    (b"\xef\xbb\xbf# a byte-order mark, then nothing\n", 1, 1, "the file is empty"),
])
def test_hostile_bytes_are_one_complaint(data: bytes, line: int, column: int, message: str) -> None:
    with pytest.raises(DemoError) as caught:
        Document("d.yaml", DemoError).parse(data)
    assert (caught.value.line, caught.value.column, caught.value.message) == (line, column, message)


def test_aliases_compose_into_shared_nodes_never_copies() -> None:
    # Nine levels of ten aliases each name 10**9 leaves; composed, they are 10 nodes per level.
    names = "abcdefghij"
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{new}: &{new} [{', '.join([f'*{old}'] * 10)}]\n" for old, new in pairwise(names)
    )
    doc, root = parsed(text)
    entries = doc.mapping(root, "a document")
    assert all(item is entries["a"].value for item in entries["b"].value.value)


def test_mapping_refuses_merge_keys_and_keys_that_are_not_strings() -> None:
    doc, root = parsed("a: 1\n<<: {b: 2}\n")
    with pytest.raises(DemoError, match=r"^d.yaml:2:1: merge keys \(<<\) are not supported$"):
        doc.mapping(root, "a document")
    doc, root = parsed("a: 1\n[b]: 2\n")
    with pytest.raises(DemoError, match=r"^d.yaml:2:1: keys must be strings, not a list$"):
        doc.mapping(root, "a document")


SECTION = """\
censor:
  blackhole: {names: [a.test], ports: 80}
  twice: 1
  twice: 2
"""


@pytest.mark.parametrize(("path", "line", "column"), [
    (("censor", "blackhole", "names", 0), 2, 23),
    # Index 0 into what is not a list stays on it: one value read as a list of one.
    (("censor", "blackhole", 0, "ports", 0), 2, 39),
    (("censor", "blackhole", "names", 5), 2, 22),  # past the end: the list
    (("censor", "blackhole", 1), 2, 14),
    (("censor", "twice"), 4, 10),  # a key given twice: the last, as constructed
    (("censor", "nothing", "deeper"), 2, 3),  # not there: the deepest node found
    ((), 1, 1),
])
def test_locate_finds_the_deepest_node_along_a_path(path: tuple[str | int, ...], line: int, column: int) -> None:
    _, root = parsed(SECTION)
    mark = locate(root, path).start_mark
    assert (mark.line + 1, mark.column + 1) == (line, column)


def test_plain_gives_what_safe_load_gives() -> None:
    doc, root = parsed(SECTION + "when: 2026-11-23\nhex: 0x1f\nset: !!set {a: null}\n")
    assert doc.plain(root, "x") == yaml.safe_load(SECTION + "when: 2026-11-23\nhex: 0x1f\nset: !!set {a: null}\n")


@pytest.mark.parametrize(("text", "message"), [
    ("a: !!int 0b\n", "d.yaml: x: a value does not fit its tag"),
    ("a: !!bool maybe\n", "d.yaml: x: a value does not fit its tag"),
    ("a: !!timestamp 2026-02-30\n", "d.yaml: x: a value does not fit its tag"),
    ("a: !x 1\n", "d.yaml: x: could not determine a constructor for the tag '!x'"),
    ("? [a]\n: 1\n", "d.yaml: x: while constructing a mapping"),
    ("[" * 400 + "]" * 400, "d.yaml: x: nesting too deep"),
])
def test_plain_refuses_what_cannot_be_constructed(text: str, message: str) -> None:
    doc, root = parsed(text)
    with pytest.raises(DemoError) as caught:
        doc.plain(root, "x")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


PIECES = st.sampled_from([
    "{", "}", "[", "]", ":", ": ", "- ", ",", "\n", "  ", "&a ", "*a", "!!str ", "!!int ", "!!bool ", "!!float ",
    "!!timestamp ", "!!set ", "!!omap ", "!!binary ", "!x ", "<<: ", "? ", "'", '"', "0b", "0x", "1_0", "yes",
    "2026-02-30", "\x00", "\t",
])


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES | st.text(max_size=4), max_size=40))
def test_fuzz_only_the_declared_error_comes_out(pieces: list[str]) -> None:
    doc = Document("fuzz.yaml", DemoError)
    try:
        doc.plain(doc.parse("".join(pieces).encode("utf-8", "surrogatepass")), "x")
    except DemoError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml:")
