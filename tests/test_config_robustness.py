"""Bad config files are exit 3 with a clear message naming the path, never a traceback.

Invalid UTF-8, YAML anchor cycles, documents and composites nested too deep, alias
bombs, bad model names, values that load but cannot be used, and plugin fields typed
``Any`` given lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner, Result

from healthkit import (
    ConfigError,
    Resolver,
    StrategyContext,
    StrategyRegistrar,
    StrategyRegistry,
    hookimpl,
    load_config,
    parse_spec,
)
from healthkit._config import MAX_COMPOSITE_DEPTH, MAX_DEPTH
from healthkit.cli import cli
from healthkit.cli._output import create_instances
from healthkit.strategies.noop import NoopStrategy
from healthkit.validators import MAX_NAME_LENGTH, target_name

pytest.importorskip("yaml")


def run(*args: str) -> Result:
    # catch_exceptions=False: a traceback fails the test instead of becoming exit 1
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[bytes | str, str], str]:
    def write(content: bytes | str, name: str) -> str:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    return write


def _issues(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(i) for i in exc.value.issues]


# -- invalid UTF-8 ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "check"])
def test_non_utf8_file_is_exit_3_with_the_byte_offset(
    write: Callable[[bytes | str, str], str], command: str
) -> None:
    path = write(b"# caf\xe9\n[models.a]\n", "l.toml")
    result = run(command, path)
    assert result.exit_code == 3, result.output
    assert f"invalid config {path}" in result.stderr
    assert "not valid UTF-8: byte 0xe9 at offset 5 (line 1)" in result.stderr
    assert result.stdout == ""


# -- nesting, cycles and alias bombs ----------------------------------------------------

CYCLE = """\
defaults: &d
  health_check: {strategy: noop, extra: *d}
"""

# 319 bytes: nine levels of ten aliases each stand for 10^9 values.
BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
models: {m: {health_check: {strategy: noop, x: *g}}}
"""


def test_yaml_anchor_cycle_is_a_config_error(write: Callable[[bytes | str, str], str]) -> None:
    path = write(CYCLE, "cycle.yaml")
    result = run("validate", path)
    assert result.exit_code == 3, result.output
    assert "defaults.health_check.extra" in result.stderr
    assert "a YAML alias refers to a table or list that contains it (a cycle)" in result.stderr


def test_alias_bomb_is_rejected_before_it_is_expanded(
    write: Callable[[bytes | str, str], str],
) -> None:
    path = write(BOMB, "bomb.yaml")
    result = run("validate", path)
    assert result.exit_code == 3, result.output
    assert "YAML aliases expand the document to" in result.stderr
    assert "an alias bomb?" in result.stderr


def test_aliases_within_the_budget_still_load(registry: StrategyRegistry) -> None:
    shared = {"strategy": "noop"}
    config = load_config(
        {"models": {f"m{i}": {"health_check": shared} for i in range(50)}}, registry=registry
    )
    assert len(config.models) == 50


def _nested_composite(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"strategy": "noop"}
    for _ in range(levels):
        spec = {"strategy": "composite", "checks": [spec]}
    return spec


def test_composites_nest_up_to_the_documented_limit(registry: StrategyRegistry) -> None:
    spec = parse_spec(_nested_composite(MAX_COMPOSITE_DEPTH), registry=registry)
    assert spec.strategy == "composite"


@pytest.mark.parametrize("levels", [MAX_COMPOSITE_DEPTH + 1, 170, 400])
def test_composites_nested_too_deep_are_a_config_error(
    registry: StrategyRegistry, levels: int
) -> None:
    raw = {"models": {"m": {"health_check": _nested_composite(levels)}}}
    with pytest.raises(ConfigError) as exc:
        load_config(raw, registry=registry)
    (issue,) = _issues(exc)
    if levels * 2 + 4 <= MAX_DEPTH:
        prefix = "models.m.health_check" + ".checks[0]" * (MAX_COMPOSITE_DEPTH + 1)
        assert issue == f"{prefix}: strategies nest at most {MAX_COMPOSITE_DEPTH} levels deep"
    else:
        assert issue.endswith(f"nested deeper than {MAX_DEPTH} levels")
        assert issue.startswith("models.m.health_check")


def test_deep_composite_file_is_exit_3(write: Callable[[bytes | str, str], str]) -> None:
    raw = {"models": {"m": {"health_check": _nested_composite(170)}}}
    path = write(json.dumps(raw), "deep.json")
    result = run("validate", path)
    assert result.exit_code == 3, result.output
    assert "nested deeper than" in result.stderr


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", "[" * 50_000 + "]" * 50_000),
        ("deep.yaml", "a: " + "[" * 5_000 + "]" * 5_000),
        ("deep.toml", "a = " + "[" * 5_000 + "]" * 5_000),
    ],
)
def test_documents_too_deep_for_the_parser_are_exit_3(
    write: Callable[[bytes | str, str], str], name: str, text: str
) -> None:
    result = run("validate", write(text, name))
    assert result.exit_code == 3, result.output
    assert "nested" in result.stderr or "invalid" in result.stderr


# -- model names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "model name '': model name must not be empty"),
        ("\x00", "model name '\\x00': model name must contain only printable characters"),
        ("\n", "model name '\\n': model name must contain only printable characters"),
        ("a" * 100_000, "(100000 characters): model name must be at most 256 characters"),
        (".", "model name '.': model name must not be '.'"),
        ("..", "model name '..': model name must not be '..'"),
        ("a/b", "model name 'a/b': model name must not contain '/'"),
        (" a", "model name ' a': model name must not start or end with whitespace"),
        ("\x00child:composite#1/0", "must contain only printable characters"),
    ],
)
def test_bad_model_names_are_config_errors(
    registry: StrategyRegistry, name: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config({"models": {name: {}, "fine": {}}}, registry=registry)
    (issue,) = _issues(exc)
    assert issue.startswith("models: ")
    assert expected in issue
    assert len(issue) < 300  # a 100 KB name is not echoed in full


@pytest.mark.parametrize("version", ["..", "a/b", "", "\t1"])
def test_bad_versions_are_config_errors(registry: StrategyRegistry, version: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config({"models": {"m": {"version": version}}}, registry=registry)
    (issue,) = _issues(exc)
    assert issue.startswith("models.m.version: version must ")


def test_good_names_and_versions_load(registry: StrategyRegistry) -> None:
    names = ["resnet-50", "llama_3.1", "a" * MAX_NAME_LENGTH, "café", "a b", "1"]
    config = load_config({"models": {n: {"version": 3} for n in names}}, registry=registry)
    assert list(config.models) == names
    assert {m.version for m in config.models.values()} == {"3"}


def test_target_name_helper() -> None:
    assert target_name("resnet") == "resnet"
    with pytest.raises(ValueError, match=r"^version must not be '\.\.'"):
        target_name("..", what="version")
    with pytest.raises(TypeError, match="model name must be a string"):
        target_name(3)


# -- validate creates every instance --------------------------------------------------


def test_validate_fails_a_config_whose_instance_cannot_be_created(
    write: Callable[[bytes | str, str], str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing-ca.pem"
    path = write(
        f"""
[defaults.health_check]
strategy = "http"
base_url = "https://127.0.0.1:9"
ca_bundle = "{missing}"
[models.a]
[models.b]
[models.c.health_check]
strategy = "noop"
""",
        "tls.toml",
    )
    result = run("validate", path)
    assert result.exit_code == 3, result.output
    assert "models.a.health_check: cannot be created: " in result.stderr
    assert "TLS setup failed" in result.stderr
    assert "(shared by 2 models: a, b)" in result.stderr
    assert result.stdout == ""


def test_create_instances_closes_what_it_created(registry: StrategyRegistry) -> None:
    config = load_config(
        {"models": {"a": {}, "b": {"health_check": {"strategy": "http", "base_url": "http://h"}}}},
        registry=registry,
    )
    assert create_instances(config, registry) == []


# -- plugin fields typed Any ---------------------------------------------------------------


def _keep(value: Any) -> Any:
    return value


@attrs.frozen(kw_only=True)
class _AnyConfig:
    tags: Any = ()
    extra: Any = attrs.field(default=None, converter=_keep)


class _AnyPlugin:
    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        registrar.add("anything", config=_AnyConfig, factory=self.create)

    @staticmethod
    def create(config: _AnyConfig, context: StrategyContext) -> NoopStrategy:
        return NoopStrategy(config)  # type: ignore[arg-type]


@pytest.fixture
def any_registry() -> StrategyRegistry:
    return StrategyRegistry(plugins=[_AnyPlugin()], entry_points=False)


async def test_lists_in_an_any_field_are_frozen_and_shared(any_registry: StrategyRegistry) -> None:
    hc = {"strategy": "anything", "tags": ["a", {"b": [1, 2]}]}
    config = load_config(
        {"models": {"x": {"health_check": hc}, "y": {"health_check": dict(hc)}}},
        registry=any_registry,
    )
    spec = config.models["x"].check
    assert spec.config.tags == ("a", {"b": (1, 2)})
    hash(spec)
    resolver = Resolver(any_registry)
    try:
        assert resolver.acquire("x", spec) is resolver.acquire("y", config.models["y"].check)
        assert resolver.stats().instances == 1
    finally:
        await resolver.aclose()


def test_an_unhashable_converted_value_is_a_config_error(any_registry: StrategyRegistry) -> None:
    raw = {"models": {"x": {"health_check": {"strategy": "anything", "extra": [1, 2]}}}}
    with pytest.raises(ConfigError) as exc:
        load_config(raw, registry=any_registry)
    assert _issues(exc) == [
        "models.x.health_check.extra: plugin config values must be hashable: use a tuple "
        "(a list or table was kept as it was by the field's converter)"
    ]
