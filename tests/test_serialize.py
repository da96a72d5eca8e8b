from __future__ import annotations

import json
from typing import Any

import pytest
from archive_samples import ALL_OBSERVATIONS, CONTROL_STATUS, FEATURES, RESULTS, WEB
from hypothesis import given
from hypothesis import strategies as st

from probe.model import (
    Certificate,
    DNSAnswer,
    DNSObservation,
    DNSResponse,
    Failure,
    HTTPHop,
    HTTPObservation,
    TargetVerdict,
    TCPObservation,
    TLSObservation,
    Verdict,
)
from probe.serialize import (
    SerializeError,
    control_status_from_dict,
    control_status_to_dict,
    feature_verdict_from_dict,
    feature_verdict_to_dict,
    observation_from_dict,
    observation_to_dict,
    target_from_dict,
    target_result_from_dict,
    target_result_to_dict,
    target_to_dict,
    target_verdict_from_dict,
    target_verdict_to_dict,
)


def through_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def leaves(data: Any, path: str = "$") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in leaves(value, f"{path}.{key}")]
    if isinstance(data, list):
        return [leaf for i, value in enumerate(data) for leaf in leaves(value, f"{path}[{i}]")]
    return [(path, data)]


@pytest.mark.parametrize("observation", ALL_OBSERVATIONS, ids=lambda o: o.kind)
def test_observation_round_trip_through_json(observation: Any) -> None:
    data = observation_to_dict(observation)
    assert next(iter(data)) == "kind"
    assert observation_from_dict(through_json(data)) == observation


def test_output_holds_only_json_types_and_floats_only_for_times_and_durations() -> None:
    for observation in ALL_OBSERVATIONS:
        for path, value in leaves(observation_to_dict(observation)):
            assert value is None or isinstance(value, str | int | float), path
            if isinstance(value, float):
                assert path.rsplit(".", 1)[-1] in ("t0", "t", "seconds"), path


def test_http_headers_are_pairs_of_strings() -> None:
    data = observation_to_dict(ALL_OBSERVATIONS[3])
    assert data["headers"][0] == ["Content-Type", "text/html; charset=utf-8"]


def test_target_round_trip_nests_spec() -> None:
    data = target_to_dict(WEB)
    assert (data["id"], data["kind"]) == ("https-web", "https")
    assert data["spec"]["alpn"] == ["h2", "http/1.1"]
    assert data["spec"]["expect"]["status"] == [200, 302]
    assert target_from_dict(through_json(data)) == WEB


def test_verdicts_and_status_round_trip() -> None:
    for verdict in FEATURES.values():
        assert feature_verdict_from_dict(through_json(feature_verdict_to_dict(verdict))) == verdict
    verdict = TargetVerdict(Verdict.INCONCLUSIVE, "controls-failed", "no network", (0, 2))
    assert target_verdict_from_dict(through_json(target_verdict_to_dict(verdict))) == verdict
    assert control_status_from_dict(through_json(control_status_to_dict(CONTROL_STATUS))) == CONTROL_STATUS


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.target.id)
def test_target_result_round_trip(result: Any) -> None:
    data = target_result_to_dict(result)
    assert list(data) == ["id", "feature", "kind", "spec", "verdict", "method", "reason", "evidence", "observations"]
    assert target_result_from_dict(through_json(data)) == result


def test_evidence_must_point_at_an_observation() -> None:
    data = through_json(target_result_to_dict(RESULTS[0]))
    data["evidence"] = [0, 3]
    with pytest.raises(SerializeError, match=r"^\$\.evidence\[1\]: no observation 3 \(the target has 3\)$"):
        target_result_from_dict(data)


def test_unknown_members_are_ignored() -> None:
    # Additive format changes keep the version: old readers must cope.
    data = observation_to_dict(ALL_OBSERVATIONS[0]) | {"added_later": {"x": 1}}
    assert observation_from_dict(data) == ALL_OBSERVATIONS[0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(kind="udp"), r"^\$\.kind: expected one of dns, tcp, tls, http, handshake, got 'udp'$"),
        (lambda d: d.pop("t0"), r"^\$\.t0: missing$"),
        (lambda d: d.update(t=True), r"^\$\.t: expected a number, got true$"),
        (lambda d: d.update(failure="oops"), r"^\$\.failure: unknown Failure 'oops'$"),
        (lambda d: d["responses"][1].update(rcode=3), r"^\$\.responses\[1\]\.rcode: expected a string, got 3$"),
        (lambda d: d["responses"][0]["answers"][0].update(ttl="60"), r"^\$\.responses\[0\]\.answers\[0\]\.ttl: expected an integer"),
        (lambda d: d.update(responses={}), r"^\$\.responses: expected a list, got an object$"),
    ],
)
def test_bad_data_names_the_json_path(mutate: Any, message: str) -> None:
    data = through_json(observation_to_dict(ALL_OBSERVATIONS[0]))
    mutate(data)
    with pytest.raises(SerializeError, match=message):
        observation_from_dict(data)


def test_header_pairs_must_have_two_items() -> None:
    data = through_json(observation_to_dict(ALL_OBSERVATIONS[3]))
    data["headers"][1] = ["Server"]
    with pytest.raises(SerializeError, match=r"^\$\.headers\[1\]: expected a list of 2 items, got 1$"):
        observation_from_dict(data)


def test_every_leaf_replaced_by_a_wrong_type_is_refused_or_kept_valid() -> None:
    # Replacing any value by an object must give SerializeError naming that path
    # (or be accepted, for members a reader ignores); never another exception.
    for observation in ALL_OBSERVATIONS:
        data = through_json(observation_to_dict(observation))
        for path, _ in leaves(data):
            broken = through_json(data)
            _set(broken, path, {"x": 1})
            with pytest.raises(SerializeError) as caught:
                observation_from_dict(broken)
            # A null member that becomes an object is read as that object: the
            # error then names the first member it lacks, below the path.
            assert str(caught.value).startswith((path + ":", path + ".")), (path, str(caught.value))


def _set(data: Any, path: str, value: Any) -> None:
    import re

    steps = re.findall(r"\.([a-z_0-9]+)|\[(\d+)\]", path)
    for name, index in steps[:-1]:
        data = data[name] if name else data[int(index)]
    name, index = steps[-1]
    data[name if name else int(index)] = value


# --------------------------------------------------------------------------
# Hypothesis: any observation round-trips; any JSON gives only SerializeError

times = st.integers(min_value=0, max_value=10**10).map(lambda us: round(us / 1e6, 6))
text = st.text(max_size=20)
failures = st.none() | st.sampled_from(Failure)
optional_int = st.none() | st.integers(min_value=0, max_value=2**31)

dns_observations = st.builds(
    DNSObservation,
    query=text,
    rtype=text,
    resolver=text,
    t0=times,
    t=times,
    failure=failures,
    responses=st.lists(
        st.builds(
            DNSResponse,
            t=times,
            rcode=text,
            answers=st.lists(st.builds(DNSAnswer, rtype=text, data=text, ttl=st.integers(0, 2**31))).map(tuple),
            ip_ttl=optional_int,
            ip_id=optional_int,
        ),
        max_size=3,
    ).map(tuple),
)
tcp_observations = st.builds(TCPObservation, address=text, port=st.integers(0, 65535), t0=times, t=times, failure=failures)
tls_observations = st.builds(
    TLSObservation,
    address=text,
    port=st.integers(0, 65535),
    sni=text,
    alpn_offered=st.lists(text, max_size=3).map(tuple),
    t0=times,
    t=times,
    failure=failures,
    version=st.none() | text,
    cipher=st.none() | text,
    alpn=st.none() | text,
    certificates=st.lists(
        st.builds(Certificate, sha256=text, subject=text, issuer=text, not_before=text, not_after=text, names=st.lists(text, max_size=3).map(tuple)),
        max_size=2,
    ).map(tuple),
    verified=st.booleans(),
)
http_observations = st.builds(
    HTTPObservation,
    url=text,
    method=text,
    address=st.none() | text,
    t0=times,
    t=times,
    failure=failures,
    status=optional_int,
    headers=st.lists(st.tuples(text, text), max_size=3).map(tuple),
    body_length=optional_int,
    body_sha256=st.none() | text,
    body_truncated=st.booleans(),
    title=st.none() | text,
    redirects=st.lists(st.builds(HTTPHop, url=text, status=st.integers(100, 599), location=st.none() | text), max_size=2).map(tuple),
)
observations = dns_observations | tcp_observations | tls_observations | http_observations


@given(observations)
def test_any_observation_round_trips(observation: Any) -> None:
    data = observation_to_dict(observation)
    assert observation_from_dict(through_json(data)) == observation
    # Stable: encoding twice gives the same JSON text.
    assert json.dumps(observation_to_dict(observation)) == json.dumps(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_hostile_values_raise_only_serialize_error(value: Any) -> None:
    try:
        observation_from_dict(value)
    except SerializeError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("$")


@given(observations, st.data())
def test_hostile_members_raise_only_serialize_error(observation: Any, data: st.DataObject) -> None:
    valid = through_json(observation_to_dict(observation))
    member = data.draw(st.sampled_from(sorted(set(valid) - {"kind"})))
    valid[member] = data.draw(json_values)
    try:
        decoded = observation_from_dict(valid)
    except SerializeError as exc:
        assert str(exc).startswith(f"$.{member}")
    else:
        assert observation_to_dict(decoded)[member] == valid[member]
