"""Equal configs share an instance however they are spelled: defaults omitted or written out.

For every built-in strategy and the three plugins, a config with its defaults
omitted equals (and hashes like) the same config with any subset of its documented
defaults spelled out; and ``describe_spec`` never shows ``null`` where the
documented default is a value.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from healthkit import StrategyRegistry, describe_spec, load_config, parse_spec
from healthkit.cli._output import dedupe_plan, plan_figures

#: strategy -> (required keys, every other key with its documented default, as written
#: in a config). ``None`` is written ``null`` (JSON) and means "unset".
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "noop": ({}, {}),
    "http": (
        {"base_url": "http://predictor:8080"},
        {
            "protocol": "v2",
            "timeout": 1.0,
            "path": None,
            "method": "GET",
            "expected_status": ["2xx"],
            "degraded_status": [],
            "json_field": None,
            "verify": True,
            "ca_bundle": None,
            "client_cert": None,
            "client_key": None,
            "headers": {},
            "retries": 0,
            "backoff": 0.05,
            "backoff_max": 1.0,
            "max_connections": 10,
            "batch": False,
            "max_body_bytes": 65536,
            "max_index_bytes": 8 * 1024 * 1024,
        },
    ),
    "grpc": (
        {"target": "predictor:8081"},
        {
            "protocol": "v2",
            "service": None,  # health-v1 only
            "timeout": 1.0,
            "tls": None,
            "metadata": {},
            "retries": 0,
            "backoff": 0.05,
            "backoff_max": 1.0,
        },
    ),
    "grpc-health": (
        {"target": "predictor:8081", "protocol": "health-v1"},
        {
            "service": "{model}",
            "timeout": 1.0,
            "tls": None,
            "metadata": {},
            "retries": 0,
            "backoff": 0.05,
            "backoff_max": 1.0,
        },
    ),
    "composite": (
        {"checks": [{"strategy": "noop"}]},
        {"mode": "all", "quorum": None, "timeout": 1.0},
    ),
    "tcp": (
        {"host": "predictor", "port": 9000},
        {
            "timeout": 1.0,
            "send": None,
            "expect": None,
            "encoding": "utf-8",
            "tls": False,
            "verify": True,
            "ca_bundle": None,
            "server_name": None,
        },
    ),
    "exec": (
        {"argv": ["true"]},
        {
            "timeout": 1.0,
            "pass_env": ["LANG", "LC_ALL", "PATH"],
            "env": {},
            "cwd": None,
            "max_processes": 8,
        },
    ),
    "openai": (
        {"base_url": "http://vllm:8000"},
        {
            "endpoints": ["health", "models"],
            "health_path": "/health",
            "models_path": "/v1/models",
            "api_key_env": None,
            "timeout": 1.0,
            "verify": True,
            "ca_bundle": None,
            "max_connections": 10,
            "max_body_bytes": 1 << 20,
        },
    ),
}
#: Other spellings of a default: ``tls = false`` is plaintext, like ``tls`` absent (it
#: is shown as ``null``: no TLS settings).
ALSO = {"tls": [None, False]}
#: Keys of every health_check that belong to the spec, not the strategy's config.
SPEC_DEFAULTS = {"isolation": "none"}


def _strategy(case: str) -> str:
    return case.split("-")[0]


@pytest.fixture(scope="module")
def full_registry() -> StrategyRegistry:
    registry = StrategyRegistry()
    missing = {_strategy(c) for c in CASES} - set(registry.names())
    if missing:
        pytest.skip(f"strategies not installed: {sorted(missing)}")
    return registry


@pytest.mark.parametrize("case", list(CASES))
def test_every_default_is_listed(full_registry: StrategyRegistry, case: str) -> None:
    """A new config field with a default must be added here (and to the docs)."""
    required, defaults = CASES[case]
    cls = full_registry.get(_strategy(case)).config_class
    with_default = {
        f.alias or f.name for f in attrs.fields(cls) if f.init and f.default is not attrs.NOTHING
    }
    assert with_default == set(defaults) | (set(required) & with_default)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=st.sampled_from(list(CASES)), data=st.data())
def test_defaults_spelled_out_give_the_same_spec(
    full_registry: StrategyRegistry, case: str, data: st.DataObject
) -> None:
    required, defaults = CASES[case]
    every = {**defaults, **SPEC_DEFAULTS}
    spelled_keys = data.draw(st.sets(st.sampled_from(sorted(every))) if every else st.just(set()))
    minimal = {"strategy": _strategy(case), **required}
    spelled = {
        **minimal,
        **{
            k: data.draw(st.sampled_from(ALSO[k])) if k in ALSO and every[k] is None else every[k]
            for k in spelled_keys
        },
    }
    a = parse_spec(minimal, registry=full_registry)
    b = parse_spec(spelled, registry=full_registry)
    assert a == b, spelled_keys
    assert hash(a) == hash(b)
    # through JSON as whole configs: two models, one instance
    config = load_config(
        json.loads(
            json.dumps({"models": {"x": {"health_check": minimal}, "y": {"health_check": spelled}}})
        ),
        registry=full_registry,
    )
    assert plan_figures(dedupe_plan(config)) == (2, 1 + (case == "composite"))


@pytest.mark.parametrize("case", list(CASES))
def test_describe_spec_shows_defaults_not_null(full_registry: StrategyRegistry, case: str) -> None:
    required, defaults = CASES[case]
    described = describe_spec(
        parse_spec({"strategy": _strategy(case), **required}, registry=full_registry)
    )
    for key, value in described.items():
        if value is None:
            assert defaults.get(key) is None, f"{key} shows null, its default is {defaults[key]!r}"


def test_grpc_service_omitted_and_spelled_share_one_instance(
    full_registry: StrategyRegistry,
) -> None:
    hc = {"strategy": "grpc", "target": "predictor:8081", "protocol": "health-v1"}
    config = load_config(
        {
            "models": {
                "a": {"health_check": hc},
                "b": {"health_check": {**hc, "service": "{model}"}},
            }
        },
        registry=full_registry,
    )
    assert plan_figures(dedupe_plan(config)) == (2, 1)
    assert describe_spec(config.models["a"].check)["service"] == "{model}"
