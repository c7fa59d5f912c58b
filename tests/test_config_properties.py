"""Hypothesis properties of config normalization.

Equivalent spellings of one health check (key order, URL case / default port /
trailing slash, int vs float, header-name case, method case, status-range
spelling, TOML vs JSON vs dict) give equal, hash-equal specs; changing any one
value gives a different spec.
"""

from __future__ import annotations

import json
import random
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from healthkit import StrategyRegistry, StrategySpec, load_config, parse_spec

SETTINGS = settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

hosts = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z]{2,5}){0,2}", fullmatch=True)
segments = st.lists(st.from_regex(r"[a-z0-9_~-]{1,6}", fullmatch=True), max_size=3)
header_names = st.from_regex(r"x-[a-z]{1,8}", fullmatch=True)
# No "$": it starts ``${VAR}`` interpolation.
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="$"),
    min_size=1,
    max_size=12,
)


@st.composite
def canonical_http(draw: st.DrawFn) -> dict[str, Any]:
    """One http health check, as plain values (the canonical meaning)."""
    scheme = draw(st.sampled_from(["http", "https"]))
    protocol = draw(st.sampled_from(["v1", "v2", "generic"]))
    data: dict[str, Any] = {
        "scheme": scheme,
        "host": draw(hosts),
        "port": draw(st.one_of(st.none(), st.integers(1024, 65535))),
        "segments": draw(segments),
        "protocol": protocol,
        "timeout": draw(st.sampled_from([0.25, 0.5, 1, 2, 3, 10])),
        "retries": draw(st.integers(0, 3)),
        "headers": draw(st.dictionaries(header_names, header_values, max_size=3)),
        "verify": draw(st.booleans()),
    }
    if protocol == "generic":
        data["path"] = draw(st.sampled_from(["/health/{model}", "/m/{model}/v/{version}", "/h"]))
        data["method"] = draw(st.sampled_from(["GET", "HEAD", "POST"]))
        data["expected"] = draw(st.sampled_from([(2,), (2, 3)]))
    return data


@st.composite
def spelling(draw: st.DrawFn, canon: dict[str, Any]) -> dict[str, Any]:
    """One of many equivalent raw configs for ``canon``."""

    def case(text: str) -> str:
        flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        return "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))

    default_port = {"http": 80, "https": 443}[canon["scheme"]]
    port = canon["port"]
    if port is None and draw(st.booleans()):
        port = default_port  # spelled out, means the same
    netloc = case(canon["host"]) + (f":{port}" if port is not None else "")
    path = "".join(f"/{s}" for s in canon["segments"])
    if draw(st.booleans()):
        path += "/"
    url = f"{case(canon['scheme'])}://{netloc}{path}"
    timeout = canon["timeout"]
    if float(timeout).is_integer():
        timeout = draw(st.sampled_from([int(timeout), float(timeout)]))
    raw: dict[str, Any] = {
        "strategy": "http",
        "base_url": url,
        "timeout": timeout,
        "headers": {case(k): v for k, v in canon["headers"].items()},
    }
    if canon["protocol"] != "v2" or draw(st.booleans()):  # v2 is the default
        raw["protocol"] = canon["protocol"]
    if canon["retries"] != 0 or draw(st.booleans()):
        raw["retries"] = canon["retries"]
    if not canon["verify"] or draw(st.booleans()):
        raw["verify"] = canon["verify"]
    if canon["protocol"] == "generic":
        raw["path"] = canon["path"]
        if canon["method"] != "GET" or draw(st.booleans()):
            raw["method"] = case(canon["method"])
        spellings = {
            (2,): [["2xx"], ["200-299"], ["2XX", "200-250"], "2xx"],
            (2, 3): [["2xx", "3xx"], ["300-399", "200-299"], ["200-399"], ["2xx", 300, "301-399"]],
        }[canon["expected"]]
        if canon["expected"] != (2,) or draw(st.booleans()):
            raw["expected_status"] = draw(st.sampled_from(spellings))
    items = list(raw.items())
    random.Random(draw(st.integers(0, 2**16))).shuffle(items)
    return dict(items)


@st.composite
def two_spellings(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    canon = draw(canonical_http())
    return canon, draw(spelling(canon)), draw(spelling(canon))


@SETTINGS
@given(case=two_spellings())
def test_equivalent_spellings_give_equal_hash_equal_specs(
    registry: StrategyRegistry, case: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
) -> None:
    _, first, second = case
    a = parse_spec(first, registry=registry)
    b = parse_spec(second, registry=registry)
    assert a == b
    assert hash(a) == hash(b)
    # and as whole configs (defaults + model override, through JSON), still one spec
    config = load_config(
        json.loads(
            json.dumps(
                {
                    "defaults": {"health_check": first},
                    "models": {"x": {}, "y": {"health_check": second}},
                }
            )
        ),
        registry=registry,
    )
    assert config.models["x"].check == config.models["y"].check == a


def _mutations(canon: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Canonical configs that differ from ``canon`` in exactly one meaningful value."""
    out: list[tuple[str, dict[str, Any]]] = []

    def changed(what: str, **kw: Any) -> None:
        out.append((what, {**canon, **kw}))

    changed("host", host=canon["host"] + "x")
    changed("port", port=8081 if canon["port"] != 8081 else 8082)
    changed("scheme", scheme="https" if canon["scheme"] == "http" else "http")
    changed("path", segments=[*canon["segments"], "extra"])
    if canon["segments"]:
        # path case is significant, unlike host case
        changed("path case", segments=[canon["segments"][0].upper() + "Q", *canon["segments"][1:]])
    changed("timeout", timeout=float(canon["timeout"]) + 0.5)
    changed("retries", retries=canon["retries"] + 1)
    changed("verify", verify=not canon["verify"])
    changed("header added", headers={**canon["headers"], "x-added": "1"})
    if canon["headers"]:
        name = next(iter(canon["headers"]))
        changed("header value", headers={**canon["headers"], name: canon["headers"][name] + "!"})
    if canon["protocol"] == "generic":
        changed("method", method="POST" if canon["method"] != "POST" else "GET")
        changed("expected", expected=(2, 3) if canon["expected"] == (2,) else (2,))
        changed("path template", path=canon["path"] + "/x")
    else:
        changed("protocol", protocol="v1" if canon["protocol"] == "v2" else "v2")
    return out


@SETTINGS
@given(data=st.data())
def test_different_values_give_different_specs(
    registry: StrategyRegistry, data: st.DataObject
) -> None:
    canon = data.draw(canonical_http())
    base = parse_spec(data.draw(spelling(canon)), registry=registry)
    for what, other in _mutations(canon):
        spec = parse_spec(data.draw(spelling(other)), registry=registry)
        assert spec != base, what


@SETTINGS
@given(data=st.data())
def test_toml_and_dict_spellings_agree(
    registry: StrategyRegistry, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    canon = data.draw(canonical_http())
    raw = data.draw(spelling(canon))
    path = tmp_path_factory.mktemp("prop") / "c.toml"
    path.write_text(_to_toml({"defaults": {"health_check": raw}}))
    assert load_config(path, registry=registry).default == parse_spec(raw, registry=registry)


def _to_toml(value: dict[str, Any], prefix: str = "") -> str:
    """A tiny TOML writer for the shapes used here (tables of scalars, lists and tables)."""
    scalars, tables = [], []
    for key, item in value.items():
        if isinstance(item, dict) and prefix.count(".") < 2 and key != "headers":
            tables.append((key, item))
        else:
            scalars.append(f"{json.dumps(key)} = {_toml_value(item)}")
    out = ""
    if prefix and scalars:
        out += f"[{prefix}]\n"
    out += "".join(f"{line}\n" for line in scalars)
    for key, item in tables:
        out += _to_toml(item, f"{prefix}.{key}" if prefix else key)
    return out


def _toml_value(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in item.items()) + "}"
    if isinstance(item, list):
        return "[" + ", ".join(_toml_value(v) for v in item) + "]"
    return json.dumps(item)


def test_spec_equality_ignores_monitor_only_keys(registry: StrategyRegistry) -> None:
    a = load_config(
        {"models": {"m": {"health_check": {"strategy": "noop", "period": 1}}}}, registry=registry
    )
    b = load_config({"models": {"m": {"health_check": {"strategy": "noop"}}}}, registry=registry)
    assert (
        a.models["m"].check
        == b.models["m"].check
        == StrategySpec(strategy="noop", config=a.models["m"].check.config)
    )
