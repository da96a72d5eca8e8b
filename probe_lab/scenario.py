"""Lab scenarios: a YAML file in, a validated :class:`Scenario` out.

A scenario says what the lab's network does (the resolver's zone and the
censor's behaviours) and what the probe should conclude there, feature by
feature, for each test list. The format is documented in docs/lab.md.

Like test lists, the file is read through :class:`probe.yamldoc.Document`
(composed into YAML nodes, read node by node), so every complaint is one
line ``FILE:LINE:COL: message`` (:class:`ScenarioError`); the ``censor:``
section is handed, as its node, to the censor's own parser, which finds
its positions through the same module.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import Node, ScalarNode, SequenceNode

from probe.classify import Method
from probe.errors import InputError
from probe.model import Verdict
from probe.yamldoc import Document
from probe_lab.censor.config import CensorConfig, CensorConfigError, parse_censor
from probe_lab.zone import DEFAULT_DELAY, Answer, Zone, ZoneEntry

__all__ = [
    "Expected",
    "Scenario",
    "ScenarioError",
    "find_scenario",
    "load_scenario",
    "shipped_scenarios",
]

_KEYS = ("name", "description", "zone", "censor", "expect")
_REQUIRED = ("name", "description")
_ZONE_KEYS = ("delay_ms", "names")
_EXPECT_KEYS = ("verdict", "method")
_ANSWERS = ", ".join(a.value for a in Answer if a is not Answer.ADDRESSES)
_VERDICTS = ", ".join(Verdict)
# Where zone addresses may point: the lab's own ranges, never the host's.
_LAB_RANGES = tuple(
    ipaddress.ip_network(n) for n in ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
_MAX_DELAY_MS = 5000


class ScenarioError(InputError):
    """A problem in a scenario file: one line, ``FILE:LINE:COL: message``."""


@dataclass(frozen=True, slots=True)
class Expected:
    verdict: Verdict
    method: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    path: str
    # Zone overrides by name, or by "*.domain" for every lab name under it
    # (an exact name wins); names not given answer with their planned addresses.
    zone: Mapping[str, ZoneEntry] = field(default_factory=dict)
    delay: float = DEFAULT_DELAY
    censor: CensorConfig = field(default_factory=CensorConfig)
    # Test list name -> feature id -> what the probe should conclude.
    expect: Mapping[str, Mapping[str, Expected]] = field(default_factory=dict)

    def build_zone(self, plan: Mapping[str, tuple[str, ...]]) -> Zone:
        """The resolver's zone: the address plan with this scenario's overrides."""
        entries = {name: ZoneEntry(Answer.ADDRESSES, tuple(a)) for name, a in plan.items()}
        patterns = sorted((p for p in self.zone if p.startswith("*.")), key=len, reverse=True)
        for name in entries:
            # The longest (most specific) pattern wins.
            match = next((p for p in patterns if name.endswith(p[1:])), None)
            if match is not None:
                entries[name] = self.zone[match]
        entries.update((n, e) for n, e in self.zone.items() if not n.startswith("*."))
        return Zone(entries, self.delay)


def shipped_scenarios() -> tuple[Path, ...]:
    """The scenario files shipped with the probe, by name."""
    folder = importlib.resources.files("probe_lab") / "scenarios"
    return tuple(sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")))


def find_scenario(name_or_path: str) -> Path:
    """A shipped scenario by name (``clean``), or a scenario file by path."""
    for path in shipped_scenarios():
        if path.stem == name_or_path:
            return path
    path = Path(name_or_path)
    if path.is_file():
        return path
    names = ", ".join(p.stem for p in shipped_scenarios())
    raise ScenarioError(f"{name_or_path}: no such scenario (shipped: {names}) and no such file")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file; raises :class:`ScenarioError`."""
    shown = str(path)
    try:
        return _read(Document(shown, ScenarioError), Path(path), shown)
    except CensorConfigError as exc:
        raise ScenarioError(exc.message, file=exc.file, line=exc.line, column=exc.column) from None


def _read(doc: Document, path: Path, shown: str) -> Scenario:
    _, root = doc.read(path)
    entries = doc.mapping(root, "a scenario")
    doc.keys(root, entries, "a scenario", _KEYS, _REQUIRED)
    name = doc.slug(entries["name"].value, "'name'")
    description = doc.string(entries["description"].value, "'description'")
    zone: dict[str, ZoneEntry] = {}
    delay = DEFAULT_DELAY
    if "zone" in entries:
        zone, delay = _zone(doc, entries["zone"].value)
    censor = parse_censor(entries["censor"].value, shown) if "censor" in entries else CensorConfig()
    expect = _expect(doc, entries["expect"].value) if "expect" in entries else {}
    return Scenario(name, description, shown, zone, delay, censor, expect)


def _zone(doc: Document, node: Node) -> tuple[dict[str, ZoneEntry], float]:
    entries = doc.mapping(node, "'zone'")
    doc.keys(node, entries, "'zone'", _ZONE_KEYS)
    delay = DEFAULT_DELAY
    if "delay_ms" in entries:
        delay = doc.integer(entries["delay_ms"].value, "'delay_ms'", 0, _MAX_DELAY_MS) / 1000
    names: dict[str, ZoneEntry] = {}
    if "names" in entries:
        for key, entry in doc.mapping(entries["names"].value, "zone 'names'").items():
            wildcard = key.startswith("*.")
            host = doc.host(entry.key, "a zone name", key.removeprefix("*."))
            names["*." + host if wildcard else host] = _zone_entry(doc, entry.value)
    return names, delay


def _zone_entry(doc: Document, node: Node) -> ZoneEntry:
    """``nxdomain`` (and the other failures), or a list of addresses."""
    if isinstance(node, ScalarNode):
        word = doc.string(node, "a zone name's answer")
        try:
            answer = Answer(word)
        except ValueError:
            answer = Answer.ADDRESSES
        if answer is Answer.ADDRESSES:
            raise doc.error(node, f"unknown answer {word!r} (one of: {_ANSWERS}, or a list of addresses)")
        return ZoneEntry(answer)
    if not isinstance(node, SequenceNode):
        raise doc.error(node, f"a zone name takes one of: {_ANSWERS}, or a list of addresses")
    addresses = []
    for item in doc.sequence(node, "a zone name's addresses"):
        text = doc.string(item, "an address")
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise doc.error(item, f"{text!r} is not an IP address") from None
        if not any(address in network for network in _LAB_RANGES):
            ranges = ", ".join(str(n) for n in _LAB_RANGES)
            raise doc.error(item, f"{text} is outside the lab's ranges ({ranges})")
        addresses.append(str(address))
    # IPv4 first: the order the censor's "partial" rule counts in.
    return ZoneEntry(Answer.ADDRESSES, tuple(sorted(addresses, key=lambda a: ":" in a)))


def _expect(doc: Document, node: Node) -> dict[str, dict[str, Expected]]:
    expect: dict[str, dict[str, Expected]] = {}
    for list_name, per_list in doc.mapping(node, "'expect'").items():
        doc.slug(per_list.key, "a test list name")
        features: dict[str, Expected] = {}
        for feature, item in doc.mapping(per_list.value, f"the expectations of {list_name!r}").items():
            doc.slug(item.key, "a feature id")
            features[feature] = _expected(doc, item.value, f"the expectation of {feature!r}")
        expect[list_name] = features
    return expect


def _expected(doc: Document, node: Node, what: str) -> Expected:
    entries = doc.mapping(node, what)
    doc.keys(node, entries, what, _EXPECT_KEYS, _EXPECT_KEYS)
    verdict_node, method_node = entries["verdict"].value, entries["method"].value
    verdict = doc.string(verdict_node, "'verdict'")
    if verdict not in set(Verdict):
        raise doc.error(verdict_node, f"unknown verdict {verdict!r} (one of: {_VERDICTS})")
    method = doc.string(method_node, "'method'")
    if method not in set(Method):
        raise doc.error(method_node, f"unknown method {method!r} (see docs/classification.md)")
    return Expected(Verdict(verdict), method)

