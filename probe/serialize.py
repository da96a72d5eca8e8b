"""Model objects to JSON-able dicts and back.

One generic codec walks the dataclasses of ``probe.model`` by their type
hints, so a field added to the model is serialized without touching this
file. The layout it produces is the one documented in
``docs/report-format.md``:

- enums become their string value, tuples become lists, ``None`` stays
  ``null``; every field is always present, so readers never guess defaults;
- the only floats in observations are times and durations (rounded to
  microseconds), everything else is a string, an integer or a boolean;
- observations are tagged by their ``kind`` member (first key);
- a target is ``{id, kind, spec}`` and a target result flattens its verdict
  next to it: ``{id, feature, kind, spec, verdict, method, reason,
  evidence, observations}``.

Decoding is for hostile input (a report from anyone): it raises only
``SerializeError``, whose one-line message starts with the JSON path of the
offending value, e.g. ``$.targets[3].observations[0].failure: ...``.
Unknown members are ignored, because additive changes keep the format
version (see ``probe.report``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from probe.errors import InputError
from probe.model import (
    ControlStatus,
    DNSObservation,
    FeatureVerdict,
    HandshakeObservation,
    HTTPObservation,
    Observation,
    Target,
    TargetResult,
    TargetVerdict,
    TCPObservation,
    TLSObservation,
)

T = TypeVar("T")


def _kind_of(cls: type) -> str:
    # With slots the class attribute is a descriptor; the tag is the field default.
    (kind,) = (f.default for f in dataclasses.fields(cls) if f.name == "kind")
    return str(kind)


_OBSERVATION_KINDS: dict[str, type[Observation]] = {
    _kind_of(cls): cls
    for cls in (
        DNSObservation, TCPObservation, TLSObservation, HTTPObservation, HandshakeObservation
    )
}

# Target fields kept beside "spec" rather than inside it.
_TARGET_HEAD = ("id", "kind")


class SerializeError(InputError):
    """Data that does not decode to a model object; one line, path first."""


# --------------------------------------------------------------------------
# Public API


def observation_to_dict(observation: Observation) -> dict[str, Any]:
    data = _encode(observation)
    # The tag first, so that a reader (human or streaming) knows the shape early.
    return {"kind": data.pop("kind"), **data}


def observation_from_dict(data: Any, path: str = "$") -> Observation:
    obj = _object(data, path)
    kind = obj.get("kind")
    cls = _OBSERVATION_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SerializeError(
            f"{path}.kind: expected one of {', '.join(_OBSERVATION_KINDS)}, got {_show(kind)}"
        )
    return _decode_dataclass(cls, obj, path)


def target_to_dict(target: Target) -> dict[str, Any]:
    spec = _encode(target)
    return {name: spec.pop(name) for name in _TARGET_HEAD} | {"spec": spec}


def target_from_dict(data: Any, path: str = "$") -> Target:
    obj = _object(data, path)
    head = {name: _decode_member(Target, obj, name, path) for name in _TARGET_HEAD}
    return _decode_dataclass(Target, _object(obj.get("spec"), f"{path}.spec"), f"{path}.spec", head)


def target_verdict_to_dict(verdict: TargetVerdict) -> dict[str, Any]:
    return _encode(verdict)


def target_verdict_from_dict(data: Any, path: str = "$") -> TargetVerdict:
    return _decode_dataclass(TargetVerdict, _object(data, path), path)


def feature_verdict_to_dict(verdict: FeatureVerdict) -> dict[str, Any]:
    return _encode(verdict)


def feature_verdict_from_dict(data: Any, path: str = "$") -> FeatureVerdict:
    return _decode_dataclass(FeatureVerdict, _object(data, path), path)


def control_status_to_dict(status: ControlStatus) -> dict[str, Any]:
    return _encode(status)


def control_status_from_dict(data: Any, path: str = "$") -> ControlStatus:
    return _decode_dataclass(ControlStatus, _object(data, path), path)


def target_result_to_dict(result: TargetResult) -> dict[str, Any]:
    target = target_to_dict(result.target)
    return {
        "id": target["id"],
        "feature": result.feature,
        "kind": target["kind"],
        "spec": target["spec"],
        **target_verdict_to_dict(result.verdict),
        "observations": [observation_to_dict(o) for o in result.observations],
    }


def target_result_from_dict(data: Any, path: str = "$") -> TargetResult:
    obj = _object(data, path)
    observations = observations_from_list(obj.get("observations"), f"{path}.observations")
    verdict = target_verdict_from_dict(obj, path)
    for position, index in enumerate(verdict.evidence):
        if not 0 <= index < len(observations):
            raise SerializeError(
                f"{path}.evidence[{position}]: no observation {index} "
                f"(the target has {len(observations)})"
            )
    return TargetResult(
        target=target_from_dict(obj, path),
        feature=_decode(str, obj.get("feature"), f"{path}.feature", "feature" in obj),
        observations=observations,
        verdict=verdict,
    )


def observations_from_list(data: Any, path: str) -> tuple[Observation, ...]:
    if not isinstance(data, list):
        raise SerializeError(f"{path}: expected a list, got {_show(data)}")
    return tuple(observation_from_dict(item, f"{path}[{i}]") for i, item in enumerate(data))


# --------------------------------------------------------------------------
# Encoding


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):  # before str: StrEnum is a str
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    return value


# --------------------------------------------------------------------------
# Decoding


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # The model uses postponed annotations; resolve them once per class.
    return typing.get_type_hints(cls)


def _decode_dataclass(
    cls: type[T], obj: Mapping[str, Any], path: str, preset: Mapping[str, Any] | None = None
) -> T:
    preset = preset or {}
    values = {
        f.name: preset[f.name] if f.name in preset else _decode_member(cls, obj, f.name, path)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in preset or f.name in obj or not _has_default(f)
    }
    return cls(**values)


def _decode_member(cls: type, obj: Mapping[str, Any], name: str, path: str) -> Any:
    return _decode(_hints(cls)[name], obj.get(name), f"{path}.{name}", name in obj)


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _decode(tp: Any, data: Any, path: str, present: bool = True) -> Any:
    if not present:
        raise SerializeError(f"{path}: missing")
    if tp == Observation:
        return observation_from_dict(data, path)
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        return _decode_optional(tp, data, path)
    if origin is tuple:
        return _decode_tuple(typing.get_args(tp), data, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        value = _decode_scalar(str, data, path)
        try:
            return tp(value)
        except ValueError:
            raise SerializeError(f"{path}: unknown {tp.__name__} {_show(data)}") from None
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, _object(data, path), path)
    return _decode_scalar(tp, data, path)


def _decode_optional(tp: Any, data: Any, path: str) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if data is None and len(args) < len(typing.get_args(tp)):
        return None
    # The model only has ``X | None`` unions besides Observation (handled above).
    (inner,) = args
    return _decode(inner, data, path)


def _decode_tuple(args: tuple[Any, ...], data: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(data, list):
        raise SerializeError(f"{path}: expected a list, got {_show(data)}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_decode(args[0], item, f"{path}[{i}]") for i, item in enumerate(data))
    if len(data) != len(args):
        raise SerializeError(f"{path}: expected a list of {len(args)} items, got {len(data)}")
    return tuple(_decode(a, item, f"{path}[{i}]") for i, (a, item) in enumerate(zip(args, data)))


def _decode_scalar(tp: Any, data: Any, path: str) -> Any:
    # bool is an int in Python but not in JSON: check it apart.
    if tp is bool:
        ok = isinstance(data, bool)
    elif tp is int:
        ok = isinstance(data, int) and not isinstance(data, bool)
    elif tp is float:
        ok = isinstance(data, int | float) and not isinstance(data, bool) and math.isfinite(data)
        data = float(data) if ok else data
    elif tp is str:
        ok = isinstance(data, str)
    else:  # a model type this codec does not know: a bug here, not bad input
        raise TypeError(f"cannot decode {tp!r}")
    if not ok:
        raise SerializeError(f"{path}: expected {_JSON_NAMES[tp]}, got {_show(data)}")
    return data


_JSON_NAMES: dict[type, str] = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _object(data: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise SerializeError(f"{path}: expected an object, got {_show(data)}")
    return data


def _show(value: Any) -> str:
    """A short, single-line rendering of a bad value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
