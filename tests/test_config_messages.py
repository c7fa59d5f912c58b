"""Config messages a newcomer can act on, and overrides that never send secrets elsewhere.

An unknown strategy gets a suggestion, a key of another strategy says which strategy
to name, every problem of a composite shows in one pass, contradictory http settings
are rejected, and a model that points at another host does not inherit the default's
secret headers or metadata unless it says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from healthkit import ConfigError, StrategyRegistry, load_config
from healthkit.cli import cli


def _issues(raw: dict[str, Any], registry: StrategyRegistry) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(raw, registry=registry)
    return [str(i) for i in exc.value.issues]


def _hc(**hc: Any) -> dict[str, Any]:
    return {"models": {"m": {"health_check": hc}}}


def test_unknown_strategy_suggests_the_closest(registry: StrategyRegistry) -> None:
    (issue,) = _issues(_hc(strategy="nop"), registry)
    assert issue.startswith(
        "models.m.health_check.strategy: unknown strategy 'nop'; did you mean 'noop'? "
        "known strategies: composite, "
    )
    assert issue.endswith(", ".join(registry.names())) or "noop" in issue


def test_unknown_key_lists_each_valid_key_once(registry: StrategyRegistry) -> None:
    (issue,) = _issues(_hc(strategy="http", base_url="http://h", zzz=1), registry)
    assert issue.startswith("models.m.health_check.zzz: unknown key; valid keys: ")
    listed = issue.split("valid keys: ", 1)[1].split(", ")
    assert listed.count("timeout") == 1
    assert len(listed) == len(set(listed))


def test_a_key_of_another_strategy_without_a_strategy_says_to_name_one(
    registry: StrategyRegistry,
) -> None:
    raw = {
        "defaults": {"health_check": {"base_url": "http://predictor:8080"}},
        "models": {"a": {}, "b": {}, "c": {"health_check": {"period": 5}}},
    }
    issues = _issues(raw, registry)
    assert len(issues) == 1, issues  # once, where it was written: not again per model
    (issue,) = issues
    assert issue.startswith(
        "defaults.health_check.base_url: unknown key; no strategy is named, so this is 'noop', "
        "which takes no such key; add strategy = 'http' ('base_url' is a key of 'http'"
    )


def test_a_key_of_another_strategy_names_its_owner(registry: StrategyRegistry) -> None:
    (issue,) = _issues(_hc(strategy="grpc", target="h:1", base_url="http://h"), registry)
    assert issue == (
        "models.m.health_check.base_url: unknown key; strategy 'grpc' takes no such key "
        "('base_url' is a key of " + issue.split("is a key of ", 1)[1]
    )
    assert "'http'" in issue


def test_composite_reports_a_bad_child_and_a_bad_quorum_in_one_pass(
    registry: StrategyRegistry,
) -> None:
    raw = _hc(
        strategy="composite",
        mode="quorum",
        quorum=5,
        checks=[{"strategy": "http"}, {"strategy": "noop"}],
    )
    assert _issues(raw, registry) == [
        "models.m.health_check.checks[0].base_url: missing required key (expected a URL)",
        "models.m.health_check.quorum: must be <= the number of checks (2), got 5",
    ]


@pytest.mark.parametrize(
    ("hc", "expected"),
    [
        (
            {"protocol": "v1", "method": "HEAD"},
            "models.m.health_check.method: HEAD gets no body, which protocol = 'v1' reads; use GET",
        ),
        (
            {"protocol": "generic", "path": "/h", "method": "head", "json_field": "ok"},
            "models.m.health_check.method: HEAD gets no body, which json_field reads; use GET",
        ),
        (
            {"protocol": "generic", "path": "/h", "degraded_status": ["200-201", "429"]},
            "models.m.health_check.degraded_status: 200-201 overlaps expected_status; "
            "a status cannot mean both healthy and degraded",
        ),
        (
            {
                "protocol": "generic",
                "path": "/h",
                "expected_status": [200],
                "degraded_status": ["2xx"],
            },
            "models.m.health_check.degraded_status: 200-299 overlaps expected_status; "
            "a status cannot mean both healthy and degraded",
        ),
    ],
)
def test_contradictory_http_settings_are_rejected(
    registry: StrategyRegistry, hc: dict[str, Any], expected: str
) -> None:
    assert _issues(_hc(strategy="http", base_url="http://h", **hc), registry) == [expected]


def test_head_with_v2_and_disjoint_statuses_are_fine(registry: StrategyRegistry) -> None:
    load_config(_hc(strategy="http", base_url="http://h", method="HEAD"), registry=registry)
    load_config(
        _hc(
            strategy="http",
            base_url="http://h",
            protocol="generic",
            path="/h",
            expected_status=["2xx"],
            degraded_status=[429, "5xx"],
        ),
        registry=registry,
    )


# -- secrets do not follow a model to another host ---------------------------------------

HTTP_DEFAULT = {
    "strategy": "http",
    "base_url": "http://predictor:8080",
    "headers": {"Authorization": "Bearer tok-for-predictor"},
    "timeout": 2,
}


def _headers(config: Any, name: str) -> dict[str, str]:
    return {k: v.get_secret_value() for k, v in config.models[name].check.config.headers.items()}


def test_a_model_on_another_host_does_not_inherit_secret_headers(
    registry: StrategyRegistry,
) -> None:
    config = load_config(
        {
            "defaults": {"health_check": HTTP_DEFAULT},
            "models": {
                "same": {},
                "port": {"health_check": {"base_url": "http://PREDICTOR:9090/x"}},
                "other": {"health_check": {"base_url": "http://elsewhere:8080"}},
                "kept": {
                    "health_check": {"base_url": "http://elsewhere:8080", "inherit_secrets": True}
                },
                "own": {
                    "health_check": {
                        "base_url": "http://elsewhere:8080",
                        "headers": {"Authorization": "Bearer its-own"},
                    }
                },
            },
        },
        registry=registry,
    )
    assert _headers(config, "same") == {"authorization": "Bearer tok-for-predictor"}
    assert _headers(config, "port") == {"authorization": "Bearer tok-for-predictor"}  # same host
    assert _headers(config, "other") == {}
    assert _headers(config, "kept") == {"authorization": "Bearer tok-for-predictor"}
    assert _headers(config, "own") == {"authorization": "Bearer its-own"}
    # other keys are still inherited
    assert config.models["other"].check.config.timeout == 2
    assert [str(n) for n in config.notices] == [
        "models.other.health_check: base_url points at another host than the default's, so "
        "the default's secret 'headers' is not sent there; set inherit_secrets = true to send it"
    ]


def test_a_grpc_model_on_another_target_does_not_inherit_metadata(
    registry: StrategyRegistry,
) -> None:
    config = load_config(
        {
            "defaults": {
                "health_check": {
                    "strategy": "grpc",
                    "target": "predictor:8081",
                    "metadata": {"authorization": "Bearer tok"},
                }
            },
            "models": {
                "a": {"health_check": {"target": "predictor:9000"}},
                "b": {"health_check": {"target": "dns:///other:8081"}},
            },
        },
        registry=registry,
    )
    assert dict(config.models["a"].check.config.metadata)
    assert dict(config.models["b"].check.config.metadata) == {}
    assert [n.path for n in config.notices] == ["models.b.health_check"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"defaults": {"health_check": {**HTTP_DEFAULT, "inherit_secrets": True}}},
            "defaults.health_check.inherit_secrets: only allowed in a model's health_check",
        ),
        (
            {
                "defaults": {"health_check": HTTP_DEFAULT},
                "models": {"m": {"health_check": {"inherit_secrets": "yes"}}},
            },
            "models.m.health_check.inherit_secrets: expected a boolean, got 'yes'",
        ),
    ],
)
def test_inherit_secrets_is_checked(
    registry: StrategyRegistry, raw: dict[str, Any], expected: str
) -> None:
    assert _issues(raw, registry) == [expected]


def test_validate_says_which_models_dropped_secrets(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        """
[defaults.health_check]
strategy = "http"
base_url = "http://predictor:8080"
headers = {Authorization = "Bearer tok-for-predictor"}
[models.a]
[models.b.health_check]
base_url = "http://elsewhere:8080"
"""
    )
    result: Result = CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "notices:\n  models.b.health_check: base_url points at another host" in result.output
    assert "tok-for-predictor" not in result.output
