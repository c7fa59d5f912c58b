"""Config loading: TOML, JSON, YAML and dicts load alike; every error is reported with its path.

Also covers defaults inheritance, ``${ENV_VAR}`` interpolation and that secrets (header
values, URL credentials) never show in reprs, ``describe_spec`` or error messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from healthkit import (
    ConfigError,
    MonitorSettings,
    Secret,
    SecretUrl,
    ServerConfig,
    StrategyRegistrar,
    StrategyRegistry,
    StrategySpec,
    Target,
    describe_spec,
    hookimpl,
    load_config,
    parse_spec,
)
from healthkit.strategies.composite import CompositeConfig
from healthkit.strategies.http import HttpConfig
from healthkit.strategies.noop import NoopConfig

ISSUE_TOML = """\
[defaults.health_check]        # server-wide default
strategy = "http"
base_url = "http://127.0.0.1:8080"
protocol = "v2"
timeout = 1.0

[models.alpha]                 # no health_check: inherits the default

[models.beta.health_check]     # per-model override
strategy = "noop"

[models.gamma.health_check]
strategy = "composite"
mode = "quorum"                # all | any | quorum
quorum = 2
checks = [ {strategy = "http", base_url = "http://10.0.0.1:8080", protocol = "v1"},
           {strategy = "http", base_url = "http://10.0.0.2:8080", protocol = "v2"},
           {strategy = "noop"} ]
"""

ISSUE_YAML = """\
defaults:
  health_check:
    strategy: http
    base_url: http://127.0.0.1:8080
    protocol: v2
    timeout: 1.0
models:
  alpha:
  beta:
    health_check: {strategy: noop}
  gamma:
    health_check:
      strategy: composite
      mode: quorum
      quorum: 2
      checks:
        - {strategy: http, base_url: "http://10.0.0.1:8080", protocol: v1}
        - {strategy: http, base_url: "http://10.0.0.2:8080", protocol: v2}
        - {strategy: noop}
"""

ISSUE_DICT: dict[str, Any] = {
    "defaults": {
        "health_check": {
            "strategy": "http",
            "base_url": "http://127.0.0.1:8080",
            "protocol": "v2",
            "timeout": 1.0,
        }
    },
    "models": {
        "alpha": {},
        "beta": {"health_check": {"strategy": "noop"}},
        "gamma": {
            "health_check": {
                "strategy": "composite",
                "mode": "quorum",
                "quorum": 2,
                "checks": [
                    {"strategy": "http", "base_url": "http://10.0.0.1:8080", "protocol": "v1"},
                    {"strategy": "http", "base_url": "http://10.0.0.2:8080", "protocol": "v2"},
                    {"strategy": "noop"},
                ],
            }
        },
    },
}


def _issues(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(issue) for issue in exc.value.issues]


def _load(raw: dict[str, Any], registry: StrategyRegistry) -> ServerConfig:
    return load_config(raw, registry=registry)


# -- formats -------------------------------------------------------------------------------


def test_toml_json_yaml_and_dict_load_to_equal_configs(
    tmp_path: Path, registry: StrategyRegistry
) -> None:
    (tmp_path / "c.toml").write_text(ISSUE_TOML)
    (tmp_path / "c.json").write_text(json.dumps(ISSUE_DICT, indent=2))
    (tmp_path / "c.yaml").write_text(ISSUE_YAML)
    (tmp_path / "c.yml").write_text(ISSUE_YAML)
    loaded = {
        name: load_config(tmp_path / name, registry=registry)
        for name in ("c.toml", "c.json", "c.yaml", "c.yml")
    }
    from_dict = load_config(ISSUE_DICT, registry=registry)
    for name, config in loaded.items():
        assert config == from_dict, name
        assert hash(config.models["gamma"].check) == hash(from_dict.models["gamma"].check)
        assert config.source == str(tmp_path / name)
    assert from_dict.source is None
    # str paths work too
    assert load_config(str(tmp_path / "c.toml"), registry=registry) == from_dict


def test_issue_example_resolves_as_documented(registry: StrategyRegistry) -> None:
    config = load_config(ISSUE_DICT, registry=registry)
    assert list(config.models) == ["alpha", "beta", "gamma"]
    default = StrategySpec(
        strategy="http",
        config=HttpConfig(base_url=SecretUrl("http://127.0.0.1:8080"), protocol="v2", timeout=1.0),
    )
    assert config.default == default
    alpha = config.models["alpha"]
    assert alpha.check == default  # no health_check: inherits the default
    assert alpha.target == Target(model="alpha")
    assert config.models["beta"].check == StrategySpec(strategy="noop", config=NoopConfig())
    gamma = config.models["gamma"].check
    assert gamma.strategy == "composite"
    assert isinstance(gamma.config, CompositeConfig)
    assert (gamma.config.mode, gamma.config.quorum) == ("quorum", 2)
    children = gamma.config.checks
    assert [c.strategy for c in children] == ["http", "http", "noop"]
    assert children[0].config.base_url.url == "http://10.0.0.1:8080"
    assert children[0].config.protocol == "v1"
    assert children[1].config.protocol == "v2"
    # children do not inherit the default's keys: they are complete specs of their own
    assert children[0].config.timeout == 1.0


def test_empty_config_and_no_defaults_mean_noop(tmp_path: Path, registry: StrategyRegistry) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty, registry=registry).models == {}
    config = load_config({"models": {"a": None, "b": {"version": 3}}}, registry=registry)
    noop = StrategySpec(strategy="noop", config=NoopConfig())
    assert config.models["a"].check == noop
    assert config.models["b"].check == noop
    assert config.models["b"].version == "3"
    assert config.models["b"].target == Target(model="b", version="3")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.toml", "models = [", "invalid TOML"),
        ("bad.json", "{models: 1}", "invalid JSON"),
        ("bad.yaml", "models: [1, 2", "invalid YAML"),
        ("conf.ini", "[models]", "unsupported config file type '.ini'"),
        ("list.json", "[1, 2]", "expected a table at the top level, got list"),
    ],
)
def test_unreadable_files_are_config_errors(
    tmp_path: Path, registry: StrategyRegistry, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, registry=registry)
    assert expected in str(exc.value)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.yaml", "models:\n  m:\n    health_check: {headers: {Authorization: s3cr3t-token\n"),
        ("c.yaml", 'x: [1,\nk: "s3cr3t-token" oops: 2\n'),
        ("c.yaml", "a: b\n\tc: s3cr3t-token\n"),
        ("c.toml", 'token = "s3cr3t-token" oops\n'),
        ("c.json", '{"token": "s3cr3t-token" oops}'),
    ],
)
def test_syntax_errors_do_not_quote_secrets(
    tmp_path: Path, registry: StrategyRegistry, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, registry=registry)
    assert "line " in str(exc.value)  # still says where
    assert "s3cr3t-token" not in str(exc.value)


def test_missing_file_is_a_config_error(tmp_path: Path, registry: StrategyRegistry) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.toml"):
        load_config(tmp_path / "nope.toml", registry=registry)


# -- errors with paths ---------------------------------------------------------------------


def test_every_error_is_collected_with_its_path(registry: StrategyRegistry) -> None:
    raw = {
        "defaults": {"health_check": {"strategy": "http", "protocol": "v3"}},
        "models": {
            "alpha": {},
            "gamma": {
                "health_check": {
                    "strategy": "composite",
                    "mode": "quorum",
                    "quorum": 2,
                    "checks": [
                        {"strategy": "noop"},
                        {"strategy": "http", "base_url": "http://h:1", "timeout": -1},
                        {"strategy": "http", "base_url": "ftp://h", "retries": "many"},
                    ],
                }
            },
            "delta": {"health_check": {"strategy": "http", "base_url": "http://x", "retries": -2}},
        },
    }
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    issues = _issues(exc)
    for expected in [
        "defaults.health_check.base_url: missing required key (expected a URL)",
        "defaults.health_check.protocol: must be one of 'v2', 'v1', 'generic', got 'v3'",
        "models.gamma.health_check.checks[1].timeout: must be > 0, got -1",
        "models.gamma.health_check.checks[2].base_url: "
        "must be an http:// or https:// URL with a host, got 'ftp://h'",
        "models.gamma.health_check.checks[2].retries: expected an integer, got 'many'",
        "models.delta.health_check.retries: must be >= 0, got -2",
    ]:
        assert expected in issues, (expected, issues)
    # An inherited key's problem is reported once, where the user wrote it.
    assert not any(
        i.startswith(("models.alpha", "models.delta.health_check.protocol")) for i in issues
    )
    # the message lists them all, one per line, after a count
    message = str(exc.value)
    assert message.startswith(f"invalid config ({len(issues)} errors):")
    assert "models.gamma.health_check.checks[1].timeout: must be > 0, got -1" in message


def test_one_error_is_reported_alone_and_exactly(registry: StrategyRegistry) -> None:
    raw = {
        "models": {
            "gamma": {
                "health_check": {
                    "strategy": "composite",
                    "checks": [
                        {"strategy": "noop"},
                        {"strategy": "http", "base_url": "http://h", "timeout": -1},
                    ],
                }
            }
        }
    }
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert _issues(exc) == ["models.gamma.health_check.checks[1].timeout: must be > 0, got -1"]
    assert str(exc.value) == (
        "invalid config (1 error):\n"
        "  models.gamma.health_check.checks[1].timeout: must be > 0, got -1"
    )


def test_unknown_strategy_lists_the_known_ones(rec_registry: StrategyRegistry) -> None:
    with pytest.raises(ConfigError) as exc:
        _load({"models": {"m": {"health_check": {"strategy": "htp"}}}}, rec_registry)
    known = rec_registry.names()
    assert {"composite", "http", "noop", "rec"} <= set(known)
    path = "models.m.health_check.strategy"
    assert _issues(exc) == [
        f"{path}: unknown strategy 'htp'; did you mean 'http'? known strategies: {', '.join(known)}"
    ]


def test_unknown_strategy_inside_a_composite(registry: StrategyRegistry) -> None:
    raw = {"strategy": "composite", "checks": [{"strategy": "noop"}, {"strategy": "grpcc"}]}
    with pytest.raises(ConfigError) as exc:
        parse_spec(raw, registry=registry, path="x")
    (issue,) = _issues(exc)
    assert issue.startswith(
        "x.checks[1].strategy: unknown strategy 'grpcc'; did you mean 'grpc'? known strategies: "
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"model": {}}, "model: unknown key; did you mean 'models'?"),
        ({"defaults": {"healthcheck": {}}}, "defaults.healthcheck: unknown key; did you mean "),
        (
            {"models": {"a": {"helth_check": {}}}},
            "models.a.helth_check: unknown key; did you mean ",
        ),
        (
            {"models": {"a": {"health_check": {"strategy": "http", "base_ur": "http://h"}}}},
            "models.a.health_check.base_ur: unknown key; did you mean 'base_url'?",
        ),
        (
            {
                "models": {
                    "a": {
                        "health_check": {
                            "strategy": "http",
                            "base_url": "http://h",
                            "ca_bundel": "x",
                        }
                    }
                }
            },
            "models.a.health_check.ca_bundel: unknown key; did you mean 'ca_bundle'?",
        ),
        (
            {"models": {"a": {"health_check": {"strategy": "noop", "perod": 5}}}},
            "models.a.health_check.perod: unknown key; did you mean 'period'?",
        ),
        (
            {"models": {"a": {"health_check": {"strategy": "noop", "zzz": 1}}}},
            "models.a.health_check.zzz: unknown key; valid keys: cache_ttl, failure_threshold, ",
        ),
    ],
)
def test_unknown_key_suggests_the_closest(
    raw: dict[str, Any], expected: str, registry: StrategyRegistry
) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert any(issue.startswith(expected) for issue in _issues(exc)), _issues(exc)


@pytest.mark.parametrize(
    ("hc", "expected"),
    [
        ({"timeout": "fast"}, "timeout: expected a number, got 'fast'"),
        ({"timeout": True}, "timeout: expected a number, got True"),
        ({"retries": 1.5}, "retries: expected an integer, got 1.5"),
        ({"verify": "yes"}, "verify: expected a boolean, got 'yes'"),
        ({"protocol": "generic"}, "path: required when protocol = 'generic'"),
        ({"path": "/h"}, "path: only allowed when protocol = 'generic'"),
        ({"method": "DELETE", "protocol": "generic", "path": "/x"}, "method: must be one of"),
        ({"protocol": "generic", "path": "/x", "expected_status": ["abc"]}, "expected_status: bad"),
        ({"protocol": "generic", "path": "/x", "expected_status": [700]}, "expected_status: "),
        ({"headers": "Bearer t0p"}, "headers: expected a table of header names"),
        (
            {"headers": {"X-Key": "a", "x-key": "b"}},
            "headers: header 'x-key' given twice (names are case-insensitive)",
        ),
        ({"base_url": "http://h:99999"}, "base_url: port must be 1-65535, got 99999"),
        ({"base_url": "http://exa mple"}, "base_url: invalid host in 'http://exa mple'"),
        ({"base_url": "h:80"}, "base_url: must be an http:// or https:// URL with a host"),
        ({"client_key": "k.pem"}, "client_key: needs client_cert"),
        ({"period": 0}, "period: must be > 0, got 0"),
        ({"jitter": 2}, "jitter: must be <= 1, got 2"),
        ({"failure_threshold": 0}, "failure_threshold: must be >= 1, got 0"),
    ],
)
def test_http_field_errors(hc: dict[str, Any], expected: str, registry: StrategyRegistry) -> None:
    raw = {"models": {"m": {"health_check": {"strategy": "http", "base_url": "http://h", **hc}}}}
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert any(i.startswith(f"models.m.health_check.{expected}") for i in _issues(exc)), _issues(
        exc
    )


@pytest.mark.parametrize(
    ("hc", "expected"),
    [
        ({"mode": "quorum"}, "models.c.health_check.quorum: required when mode = 'quorum'"),
        (
            {"mode": "quorum", "quorum": 3},
            "models.c.health_check.quorum: must be <= the number of checks (2), got 3",
        ),
        (
            {"quorum": 1},
            "models.c.health_check.quorum: only allowed when mode = 'quorum' (mode is 'all')",
        ),
        ({"mode": "quorum", "quorum": 0}, "models.c.health_check.quorum: must be >= 1, got 0"),
        ({"mode": "most"}, "models.c.health_check.mode: must be one of 'all', 'any', 'quorum'"),
        ({"checks": []}, "models.c.health_check.checks: must not be empty"),
        ({"checks": {"strategy": "noop"}}, "models.c.health_check.checks: expected a list"),
        ({"checks": None}, "models.c.health_check.checks: expected a list"),
    ],
)
def test_composite_errors(hc: dict[str, Any], expected: str, registry: StrategyRegistry) -> None:
    base: dict[str, Any] = {"strategy": "composite", "checks": [{}, {"strategy": "noop"}]}
    raw = {"models": {"c": {"health_check": {**base, **hc}}}}
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert any(i.startswith(expected) for i in _issues(exc)), _issues(exc)


def test_composite_missing_checks(registry: StrategyRegistry) -> None:
    with pytest.raises(ConfigError) as exc:
        _load({"models": {"c": {"health_check": {"strategy": "composite"}}}}, registry)
    assert _issues(exc) == ["models.c.health_check.checks: missing required key (expected a list)"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"models": []}, "models: expected a table, got []"),
        ({"defaults": 3}, "defaults: expected a table, got 3"),
        ({"models": {"m": 5}}, "models.m: expected a table, got 5"),
        ({"models": {"m": {"health_check": "http"}}}, "models.m.health_check: expected a table"),
        ({"models": {"m": {"version": [1]}}}, "models.m.version: expected a string, got [1]"),
        (
            {"models": {"m": {"health_check": {"strategy": 3}}}},
            "models.m.health_check.strategy: expected a string, got 3",
        ),
    ],
)
def test_structural_errors(raw: dict[str, Any], expected: str, registry: StrategyRegistry) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert any(i.startswith(expected) for i in _issues(exc)), _issues(exc)


def test_unavailable_strategy_says_why() -> None:
    class Plugin:
        @hookimpl
        def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
            registrar.add(
                "fancy",
                config=NoopConfig,
                factory=lambda c, ctx: None,  # type: ignore[arg-type,return-value]
                unavailable="install healthkit[fancy]",
            )

    registry = StrategyRegistry(plugins=[Plugin()], entry_points=False)
    with pytest.raises(ConfigError) as exc:
        _load({"models": {"m": {"health_check": {"strategy": "fancy"}}}}, registry)
    assert _issues(exc) == [
        "models.m.health_check.strategy: strategy 'fancy' is unavailable: install healthkit[fancy]"
    ]


@attrs.frozen(kw_only=True)
class _ForeignConfig:
    # An annotation that cannot be resolved at runtime (a TYPE_CHECKING-only import, say).
    level: UnresolvableName = attrs.field(default=1)  # type: ignore[name-defined]  # noqa: F821


def test_plugin_config_with_unresolvable_annotation_still_loads() -> None:
    class Plugin:
        @hookimpl
        def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
            registrar.add("foreign", config=_ForeignConfig, factory=lambda c, ctx: None)  # type: ignore[arg-type,return-value]

    registry = StrategyRegistry(plugins=[Plugin()], entry_points=False)
    spec = parse_spec({"strategy": "foreign", "level": 5}, registry=registry)
    assert spec.config == _ForeignConfig(level=5)
    with pytest.raises(ConfigError, match="lvl: unknown key; did you mean 'level'"):
        parse_spec({"strategy": "foreign", "lvl": 5}, registry=registry)


def test_parse_spec(registry: StrategyRegistry) -> None:
    spec = parse_spec({"strategy": "http", "base_url": "http://h"}, registry=registry)
    assert spec == StrategySpec(strategy="http", config=HttpConfig(base_url=SecretUrl("http://h")))
    # monitor keys belong in a model's health_check, not in a bare spec
    with pytest.raises(ConfigError) as exc:
        parse_spec({"strategy": "noop", "period": 3}, registry=registry, path="p")
    assert _issues(exc) == ["p.period: unknown key; valid keys: strategy"]


# -- interpolation -----------------------------------------------------------------------


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch, registry: StrategyRegistry) -> None:
    monkeypatch.setenv("HK_HOST", "predictor.local")
    monkeypatch.setenv("HK_TOKEN", "s3cr3t-token")
    raw = {
        "models": {
            "m": {
                "health_check": {
                    "strategy": "http",
                    "base_url": "http://${HK_HOST}:${HK_PORT:-8080}",
                    "headers": {"Authorization": "Bearer ${HK_TOKEN}", "X-Cost": "$$5"},
                }
            }
        }
    }
    config = _load(raw, registry).models["m"].check.config
    assert config.base_url.url == "http://predictor.local:8080"
    assert config.headers["authorization"].get_secret_value() == "Bearer s3cr3t-token"
    assert config.headers["x-cost"].get_secret_value() == "$5"


def test_missing_env_var_is_an_error_with_its_path(
    monkeypatch: pytest.MonkeyPatch, registry: StrategyRegistry
) -> None:
    monkeypatch.delenv("HK_MISSING", raising=False)
    raw = {
        "models": {
            "m": {
                "health_check": {
                    "strategy": "http",
                    "base_url": "http://h",
                    "headers": {"Authorization": "Bearer ${HK_MISSING}"},
                }
            }
        }
    }
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert _issues(exc) == [
        "models.m.health_check.headers.Authorization: environment variable 'HK_MISSING' is not set"
    ]


def test_interpolation_in_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: StrategyRegistry
) -> None:
    monkeypatch.setenv("HK_URL", "http://from-env:9000")
    path = tmp_path / "c.toml"
    path.write_text('[defaults.health_check]\nstrategy = "http"\nbase_url = "${HK_URL}"\n')
    assert (
        load_config(path, registry=registry).default.config.base_url.url == "http://from-env:9000"
    )


# -- defaults inheritance -------------------------------------------------------------


def test_same_strategy_inherits_the_default_keys(registry: StrategyRegistry) -> None:
    raw = {
        "defaults": {
            "health_check": {
                "strategy": "http",
                "base_url": "http://pred:8080",
                "timeout": 2,
                "retries": 2,
                "period": 5,
            }
        },
        "models": {
            "same": {"health_check": {"protocol": "v1"}},
            "named": {"health_check": {"strategy": "http", "timeout": 0.5}},
            "plain": {},
        },
    }
    config = _load(raw, registry)
    same = config.models["same"]
    assert same.check.config == HttpConfig(
        base_url=SecretUrl("http://pred:8080"), protocol="v1", timeout=2.0, retries=2
    )
    assert same.monitor == MonitorSettings(period=5.0, timeout=2.0)
    named = config.models["named"]
    assert named.check.config.timeout == 0.5
    assert named.check.config.retries == 2
    assert named.monitor.timeout == 0.5  # ``timeout`` is both the strategy's and the monitor's
    assert config.models["plain"].check == config.default
    assert config.default_monitor == MonitorSettings(period=5.0, timeout=2.0)


def test_other_strategy_inherits_only_monitor_settings(registry: StrategyRegistry) -> None:
    raw = {
        "defaults": {
            "health_check": {
                "strategy": "http",
                "base_url": "http://pred:8080",
                "headers": {"Authorization": "t"},
                "period": 7,
                "failure_threshold": 5,
            }
        },
        "models": {
            "off": {"health_check": {"strategy": "noop"}},
            "combo": {
                "health_check": {
                    "strategy": "composite",
                    "mode": "any",
                    "checks": [{"strategy": "noop"}],
                    "period": 1,
                }
            },
        },
    }
    config = _load(raw, registry)  # base_url/headers are not forced onto noop/composite
    off = config.models["off"]
    assert off.check == StrategySpec(strategy="noop", config=NoopConfig())
    assert off.monitor == MonitorSettings(period=7.0, failure_threshold=5)
    combo = config.models["combo"]
    assert combo.check.config.mode == "any"
    assert combo.monitor == MonitorSettings(period=1.0, failure_threshold=5)


def test_monitor_settings_do_not_split_the_spec(registry: StrategyRegistry) -> None:
    raw = {
        "defaults": {"health_check": {"strategy": "http", "base_url": "http://p"}},
        "models": {"a": {"health_check": {"period": 1}}, "b": {"health_check": {"period": 60}}},
    }
    config = _load(raw, registry)
    assert config.models["a"].check == config.models["b"].check
    assert config.models["a"].monitor != config.models["b"].monitor


def test_errors_from_an_inherited_key_are_reported_once(registry: StrategyRegistry) -> None:
    raw = {
        "defaults": {"health_check": {"strategy": "http", "base_url": "http://p", "retries": -1}},
        "models": {"a": {}, "b": {"health_check": {"strategy": "noop"}}},
    }
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    # where the user wrote it, not again under models that only inherit it
    assert _issues(exc) == ["defaults.health_check.retries: must be >= 0, got -1"]


# -- secrets ----------------------------------------------------------------------------

SECRETS = ("s3cr3t-token", "hunter2", "admin-user")


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


def test_secrets_never_in_repr_str_or_describe_spec(registry: StrategyRegistry) -> None:
    raw = {
        "defaults": {
            "health_check": {
                "strategy": "http",
                "base_url": "https://admin-user:hunter2@pred.example:8443/api",
                "headers": {"Authorization": "Bearer s3cr3t-token", "X-Api-Key": "hunter2"},
            }
        },
        "models": {
            "a": {},
            "c": {
                "health_check": {
                    "strategy": "composite",
                    "checks": [
                        {
                            "strategy": "http",
                            "base_url": "http://admin-user:hunter2@h",
                            "headers": {"Authorization": "s3cr3t-token"},
                        }
                    ],
                }
            },
        },
    }
    config = _load(raw, registry)
    spec = config.models["a"].check
    # the values are kept, for the wire
    assert spec.config.base_url.auth == ("admin-user", "hunter2")
    assert spec.config.headers["authorization"] == Secret("Bearer s3cr3t-token")
    for text in (
        repr(config),
        str(config),
        repr(spec),
        repr(spec.config),
        str(spec.config.base_url),
        repr(spec.config.headers),
        json.dumps(describe_spec(spec)),
        json.dumps(describe_spec(config.models["c"].check)),
    ):
        _assert_no_secret(text)
    described = describe_spec(spec)
    assert described["base_url"] == "https://***@pred.example:8443/api"
    assert described["headers"] == {"authorization": "***", "x-api-key": "***"}
    assert described["strategy"] == "http"
    assert described["timeout"] == 1.0
    child = describe_spec(config.models["c"].check)["checks"][0]
    assert child["base_url"] == "http://***@h"
    assert child["headers"] == {"authorization": "***"}


@pytest.mark.parametrize(
    "hc",
    [
        {"base_url": "http://admin-user:hunter2@h:99999"},
        {"base_url": "ftp://admin-user:hunter2@h"},
        {"base_url": "http://admin-user:hunter2@exa mple"},
        {"base_url": "http://admin-user:hunter2@h:abc"},
        {"base_url": "http://h", "headers": {"Authorization": 12345}, "retries": "x"},
        {"base_url": "http://h", "headers": {"Authorization": ["s3cr3t-token"]}},
        {"base_url": "http://admin-user:hunter2@h", "timeout": 0},
    ],
)
def test_secrets_never_in_config_errors(hc: dict[str, Any], registry: StrategyRegistry) -> None:
    raw = {"models": {"m": {"health_check": {"strategy": "http", **hc}}}}
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert exc.value.issues
    _assert_no_secret(str(exc.value))
    _assert_no_secret(repr(exc.value.issues))


def test_secret_url_password_with_at_sign_is_masked_in_errors(registry: StrategyRegistry) -> None:
    raw = {
        "models": {"m": {"health_check": {"strategy": "http", "base_url": "ftp://u:hun@ter2@h"}}}
    }
    with pytest.raises(ConfigError) as exc:
        _load(raw, registry)
    assert "ter2" not in str(exc.value)
    assert "ftp://***@h" in str(exc.value)


def test_secret_helpers() -> None:
    s = Secret("hunter2")
    assert (repr(s), str(s)) == ("Secret('***')", "***")
    assert s == Secret("hunter2") and hash(s) == hash(Secret("hunter2"))
    assert s != Secret("other")
    assert s.get_secret_value() == "hunter2"
    url = SecretUrl("http://admin-user:hunter2@Host:80/")
    assert (str(url), repr(url)) == ("http://***@host", "SecretUrl('http://***@host')")
    assert url.url == "http://host"
    assert url.auth == ("admin-user", "hunter2")
    assert url != SecretUrl("http://admin-user:other@host")
    assert SecretUrl("http://h").auth is None
    assert SecretUrl(url) == url


def test_config_records_are_frozen_and_hashable(registry: StrategyRegistry) -> None:
    config = load_config(ISSUE_DICT, registry=registry)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.models["alpha"].check.config.timeout = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.models["x"] = config.models["alpha"]  # type: ignore[index]
    assert len({m.check for m in config.models.values()}) == 3
    assert hash(config) == hash(load_config(ISSUE_DICT, registry=registry))


def test_equal_model_configs_share_one_config_object() -> None:
    """10,000 models over one config hold one spec object, not 10,000 copies."""
    registry = StrategyRegistry(entry_points=False)
    config = load_config(
        {
            "defaults": {"health_check": {"strategy": "http", "base_url": "http://h:1"}},
            "models": {
                "a": {},
                "b": {"health_check": {"base_url": "HTTP://h:1/"}},
                "c": {"health_check": {"strategy": "noop"}},
            },
        },
        registry=registry,
    )
    a, b, c = (config.models[m] for m in "abc")
    assert a.check is b.check
    assert a.monitor is b.monitor
    assert a.check is not c.check
