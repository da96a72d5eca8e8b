"""YAML inputs read as positioned nodes: the one reader behind test lists,
lab scenarios and the lab censor's configuration.

A file is *composed* into YAML nodes, never constructed into Python
objects: every value keeps its position, so every complaint names
``FILE:LINE:COL``, and no tag in a hostile file can build anything. A
:class:`Document` turns nodes into checked values (mappings with unique
string keys, lists, strings, integers, booleans, dates, slugs, host names)
or raises the error class its caller declares, a subclass of
:class:`~probe.errors.InputError` carrying file, line and column.

Hostile input is refused, never crashed on: an unreadable file, bytes that
are not UTF-8, characters YAML forbids (NUL and other C0 controls),
syntax errors, several documents in one file, an empty file, and nesting
deeper than the composer can recurse all become that one error. Anchors
and aliases compose into shared nodes (nothing is expanded), merge keys and
non-string keys are refused by :meth:`Document.mapping`, and the integer
and boolean readers never construct any other tag.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from probe.errors import InputError

__all__ = [
    "Document",
    "Entry",
    "describe",
    "is_string",
    "locate",
    "location",
    "quote",
]

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _TIMESTAMP = _YAML + "str", _YAML + "int", _YAML + "timestamp"
_SEQ, _MAP, _MERGE = _YAML + "seq", _YAML + "map", _YAML + "merge"
_BOOL = _YAML + "bool"
_TAG_WORDS = {
    _STR: "a string",
    _INT: "an integer",
    _YAML + "float": "a number",
    _BOOL: "true/false",
    _YAML + "null": "null",
    _TIMESTAMP: "a date",
}
# Only used for YAML 1.1 integer and boolean syntax (0x.., 1_000, 1:30; yes/on);
# never on other tags.
_SCALARS = SafeConstructor()

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 1123 section 2.1 labels; '_' too, as in SRV/TXT owner names (RFC 2181 section 11).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a mapping: its key's node (where to point at the key)
    and its value's node."""

    key: Node
    value: Node


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML file: turns its nodes into checked values or positioned errors.

    ``path`` is the file as shown in messages; ``error_type`` is the class
    every complaint is raised as (built with ``file``, ``line`` and ``column``),
    so each loader keeps its own declared error.
    """

    path: str
    error_type: type[InputError] = InputError

    def error(self, node: Node, message: str) -> InputError:
        """A complaint about ``node``, at the position it starts."""
        mark = node.start_mark
        return self.error_type(message, file=self.path, line=mark.line + 1, column=mark.column + 1)

    def file_error(self, message: str) -> InputError:
        """A complaint about the file as a whole (missing, unreadable, empty): at 1:1."""
        return self.error_type(message, file=self.path, line=1, column=1)

    def read(self, path: Path) -> tuple[bytes, Node]:
        """The file's bytes (for a digest) and its YAML root node."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self.file_error(f"cannot read file: {reason}") from None
        return data, self.parse(data)

    def parse(self, data: bytes) -> Node:
        """The root node of ``data``, a single YAML document in UTF-8."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _position(data[: exc.start].decode("utf-8"))
            raise self.error_type("not UTF-8 text", file=self.path, line=line, column=column) from None
        text = text.removeprefix("\ufeff")
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except ReaderError as exc:
            line, column = _position(text[: exc.position])
            message = f"YAML error: character U+{exc.character:04X} is not allowed"
            raise self.error_type(message, file=self.path, line=line, column=column) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            # PyYAML's own wording reads "<context>, <problem>" ("while parsing
            # a flow sequence, expected ',' or ']' ...").
            detail = ", ".join(part for part in (exc.context, exc.problem) if part)
            raise self.error_type(
                f"YAML error: {detail}", file=self.path, line=line, column=column
            ) from None
        except yaml.YAMLError as exc:
            raise self.file_error(f"YAML error: {exc}") from None
        except RecursionError:
            # The composer recurses once per nesting level.
            raise self.file_error("YAML error: nesting too deep") from None
        if root is None:
            raise self.file_error("the file is empty")
        return root

    def plain(self, node: Node, what: str) -> Any:
        """``node`` as plain data (what ``yaml.safe_load`` would give), for a
        schema that is also fed plain data; :func:`locate` finds its positions.

        Errors here have no position: the file and ``what``, then PyYAML's text.
        """
        try:
            return SafeConstructor().construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.error_type(f"{what}: {exc}", file=self.path) from None
        except RecursionError:
            # The constructor recurses deeper per level than the composer did.
            raise self.error_type(f"{what}: nesting too deep", file=self.path) from None
        except (ValueError, LookupError, AttributeError):
            # PyYAML's scalar constructors fail this way on an explicit tag its
            # text does not fit (!!int 0b, !!bool maybe, !!timestamp soon).
            raise self.error_type(f"{what}: a value does not fit its tag", file=self.path) from None

    def mapping(self, node: Node, what: str) -> dict[str, Entry]:
        """A mapping's entries by key; keys must be unique strings."""
        if not (isinstance(node, MappingNode) and node.tag == _MAP):
            raise self.error(node, f"{what} must be a mapping, not {describe(node)}")
        entries: dict[str, Entry] = {}
        for key, value in node.value:
            if key.tag == _MERGE:
                raise self.error(key, "merge keys (<<) are not supported")
            if not is_string(key):
                raise self.error(key, f"keys must be strings, not {describe(key)}")
            if key.value in entries:
                first = location(entries[key.value].key)
                raise self.error(key, f"duplicate key {key.value!r} (first at {first})")
            entries[key.value] = Entry(key, value)
        return entries

    def keys(
        self,
        node: Node,
        entries: dict[str, Entry],
        what: str,
        allowed: tuple[str, ...],
        required: tuple[str, ...] = (),
        known: Collection[str] = (),
    ) -> None:
        """Reject unknown keys, then missing ones.

        ``known`` are keys valid elsewhere in the same kind of mapping (for
        another target kind): they "do not apply" rather than being unknown.
        """
        listing = ", ".join(allowed)
        for name, entry in entries.items():
            if name not in allowed:
                problem = "does not apply to" if name in known else "is not a key of"
                raise self.error(entry.key, f"{name!r} {problem} {what} (allowed: {listing})")
        for name in required:
            if name not in entries:
                raise self.error(node, f"{what} is missing the required key {name!r}")

    def sequence(self, node: Node, what: str) -> list[Node]:
        """A non-empty list's items."""
        if not (isinstance(node, SequenceNode) and node.tag == _SEQ):
            raise self.error(node, f"{what} must be a list, not {describe(node)}")
        if not node.value:
            raise self.error(node, f"{what} must not be empty")
        return list(node.value)

    def string(self, node: Node, what: str, *, empty: bool = False) -> str:
        if not is_string(node):
            hint = " (put it in quotes)" if isinstance(node, ScalarNode) else ""
            raise self.error(node, f"{what} must be a string, not {describe(node)}{hint}")
        if not empty and not node.value.strip():
            raise self.error(node, f"{what} must not be empty")
        return node.value

    def integer(self, node: Node, what: str, low: int, high: int) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            raise self.error(node, f"{what} must be an integer, not {describe(node)}")
        try:
            value = _SCALARS.construct_yaml_int(node)
        except ValueError:  # beyond Python's int-from-text digit limit
            value = high + 1
        if not low <= value <= high:
            raise self.error(
                node, f"{what} must be between {low} and {high}, not {quote(node.value)}"
            )
        return value

    def boolean(self, node: Node, what: str) -> bool:
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            raise self.error(node, f"{what} must be true or false, not {describe(node)}")
        return bool(_SCALARS.construct_yaml_bool(node))

    def date(self, node: Node, what: str) -> str:
        """A calendar date written YYYY-MM-DD, returned as that text."""
        text = node.value if isinstance(node, ScalarNode) and node.tag in (_STR, _TIMESTAMP) else ""
        if _DATE.fullmatch(text):
            try:
                return datetime.date.fromisoformat(text).isoformat()
            except ValueError:
                pass
        raise self.error(node, f"{what} must be a date written YYYY-MM-DD, not {_show(node)}")

    def slug(self, node: Node, what: str) -> str:
        value = self.string(node, what)
        if not _SLUG.fullmatch(value):
            raise self.error(
                node, f"{what} {quote(value)} must be lower-case letters, digits, '-' and '_'"
            )
        return value

    def host(self, node: Node, what: str, value: str | None = None) -> str:
        """A host name (lower-cased); ``value`` when it came out of a URL or a key."""
        value = self.string(node, what) if value is None else value
        if _is_ip_literal(value):
            raise self.error(node, f"{what}: use a host name, not an IP literal ({quote(value)})")
        name = value.lower()
        if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
            raise self.error(node, f"{what}: {quote(value)} is not a valid host name")
        return name


def locate(node: Node, path: Sequence[str | int]) -> Node:
    """The deepest node reached from ``node`` along ``path`` (mapping keys,
    list indexes): where to point a complaint about the value at ``path``
    in the data :meth:`Document.plain` made of it.

    Index 0 into something that is not a list stays on it, for schemas that
    read a single value as a list of one. A key given twice is found at its
    last occurrence, the one the constructed data holds.
    """
    for part in path:
        if isinstance(part, int):
            if isinstance(node, SequenceNode) and 0 <= part < len(node.value):
                node = node.value[part]
            elif isinstance(node, SequenceNode) or part != 0:
                break
        elif isinstance(node, MappingNode):
            found = [v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
            if not found:
                break
            node = found[-1]
        else:
            break
    return node


def is_string(node: Node) -> bool:
    """A plain string scalar (not a number, date or other tagged value)."""
    return isinstance(node, ScalarNode) and node.tag == _STR


def describe(node: Node) -> str:
    """What a node is, for a message: "a list", "an integer", "a value tagged !x"."""
    if isinstance(node, SequenceNode):
        return "a list" if node.tag == _SEQ else f"a list tagged {node.tag}"
    if isinstance(node, MappingNode):
        return "a mapping" if node.tag == _MAP else f"a mapping tagged {node.tag}"
    return _TAG_WORDS.get(node.tag, f"a value tagged {node.tag}")


def location(node: Node) -> str:
    """Where a node starts, in words: to name an earlier place in a message."""
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def quote(value: str, limit: int = 60) -> str:
    """A value as it goes into a message: quoted, escaped, kept short."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _show(node: Node) -> str:
    return quote(node.value) if isinstance(node, ScalarNode) else describe(node)


def _is_ip_literal(value: str) -> bool:
    """An address in any form a resolver would take as one, not as a name."""
    try:
        ipaddress.ip_address(value.removeprefix("[").removesuffix("]"))
        return True
    except ValueError:
        pass
    try:
        # The C library also reads "127.1", "0x7f.1" or "2130706433" as IPv4.
        socket.inet_aton(value)
        return True
    except (OSError, ValueError):
        pass
    # An all-digit top label never names a host (RFC 3696 section 2).
    last = value.rsplit(".", 1)[-1]
    return last.isascii() and last.isdigit()


def _position(before: str) -> tuple[int, int]:
    """1-based line and column of the character after ``before``."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
