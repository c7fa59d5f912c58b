"""One rule for `{model}`/`{version}` templates: http path, grpc service, upstream_model.

All three go through ``healthkit.validators.format_template``; each error names the
field path, the bad field or the parse problem, and what may be used.
"""

from __future__ import annotations

from typing import Any

import pytest

from healthkit import ConfigError, StrategyRegistry, load_config
from healthkit.validators import format_template

BRACES = "write {{ and }} for literal braces"
BOTH = f"use only {{model}} and {{version}}; {BRACES}"
MODEL = f"use only {{model}}; {BRACES}"


def _http(template: str) -> dict[str, Any]:
    check = {"strategy": "http", "base_url": "http://x", "protocol": "generic", "path": template}
    return {"models": {"m": {"health_check": check}}}


def _grpc(template: str) -> dict[str, Any]:
    check = {"strategy": "grpc", "target": "x:1", "protocol": "health-v1", "service": template}
    return {"models": {"m": {"health_check": check}}}


def _upstream(template: str) -> dict[str, Any]:
    return {"models": {"m": {"upstream_model": template, "health_check": {"strategy": "noop"}}}}


#: (config builder, field path, what the template is called, the fields it may use)
PLACES = [
    pytest.param(_http, "models.m.health_check.path", "template", BOTH, id="http path"),
    pytest.param(
        _grpc, "models.m.health_check.service", "service template", BOTH, id="grpc service"
    ),
    pytest.param(_upstream, "models.m.upstream_model", "template", MODEL, id="upstream_model"),
]


def _error(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(config, registry=StrategyRegistry(entry_points=False))
    assert len(caught.value.issues) == 1, caught.value
    issue = caught.value.issues[0]
    return f"{issue.path}: {issue.message}"


#: (a bad template, what its error says between ``bad {what}`` and ``; {allowed}``)
BAD = [
    ("{name}-v3", " field {name} in '{name}-v3'"),
    ("{model!r}", " field {model} in '{model!r}'"),
    ("{model:>8}", " field {model} in '{model:>8}'"),
    ("{model[0]}", " field {model[0]} in '{model[0]}'"),
    ("{version.x}x{model}", " field {version.x} in '{version.x}x{model}'"),
    ("a{}b", " field {} in 'a{}b'"),
    ("{model", " '{model': expected '}' before end of string"),
    ("x}", " 'x}': Single '}' encountered in format string"),
]


@pytest.mark.parametrize(("build", "path", "what", "allowed"), PLACES)
@pytest.mark.parametrize(("template", "says"), BAD)
def test_a_bad_template_is_named_with_what_may_be_used(
    build: Any, path: str, what: str, allowed: str, template: str, says: str
) -> None:
    assert _error(build(template)) == f"{path}: bad {what}{says}; {allowed}"


@pytest.mark.parametrize("template", ["{model}-v3", "x{{y}}", "plain"])
def test_good_templates_load_everywhere(template: str) -> None:
    registry = StrategyRegistry(entry_points=False)
    for build in (_http, _grpc, _upstream):
        load_config(build(template), registry=registry)


def test_version_is_a_field_of_check_templates_not_of_upstream_model() -> None:
    registry = StrategyRegistry(entry_points=False)
    load_config(_http("/check/{model}/{version}"), registry=registry)
    load_config(_grpc("{model}:{version}"), registry=registry)
    assert "bad template field {version}" in _error(_upstream("{model}-{version}"))


def test_format_template_returns_the_text_it_accepts() -> None:
    assert format_template("{a}/{b}", fields=("a", "b")) == "{a}/{b}"
    with pytest.raises(ValueError, match=r"^bad url field \{c\} in '\{c\}'; use only \{a\};"):
        format_template("{c}", fields=("a",), what="url")
