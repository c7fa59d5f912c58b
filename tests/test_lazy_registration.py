"""Strategies and notifiers registered by import string: imported only when used.

``registrar.add(name, config="pkg.mod:Config", factory="pkg.mod:Strategy.create")``
keeps a plugin's modules out of every process that does not use its strategy;
name, description and conflicts need no import. A string that cannot be
imported is a broken plugin like any other: recorded, the rest keeps working,
choosing its strategy says which plugin failed and why. Every plugin module here
is a real file on ``sys.path``; entry points are real ``*.dist-info`` directories.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from healthkit import (
    ConfigError,
    StrategyRegistrar,
    StrategyRegistry,
    UnknownStrategyError,
    hookimpl,
    load_config,
)
from healthkit.cli import cli
from healthkit.notify import NotifierRegistrar

_LAZY_SOURCE = """
import attrs

from healthkit import CheckResult, Status

IMPORTS = []
IMPORTS.append("imported")


@attrs.frozen(kw_only=True)
class LazyConfig:
    level: int = 1


class LazyStrategy:
    def __init__(self, config):
        self.config = config

    @classmethod
    def create(cls, config, context):
        return cls(config)

    async def acheck(self, target):
        return CheckResult(status=Status.HEALTHY, reason=f"level {self.config.level}")

    async def aclose(self):
        pass


class NotAConfig:
    pass


@attrs.frozen(kw_only=True)
class PingConfig:
    room: str = "ops"


class Ping:
    def __init__(self, config):
        self.config = config

    async def send(self, notification):
        pass

    async def aclose(self):
        pass
"""


@pytest.fixture
def lazy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real module on sys.path, not imported yet; its name."""
    name = "hk_lazy_registration_mod"
    (tmp_path / f"{name}.py").write_text(_LAZY_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    try:
        yield name
    finally:
        sys.modules.pop(name, None)


class _Plugin:
    def __init__(self, name: str, **strategies: tuple[str, str]) -> None:
        self.__name__ = name
        self.strategies = strategies

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        for strategy, (config, factory) in self.strategies.items():
            registrar.add(strategy, config=config, factory=factory, description=f"{strategy}!")


def _registry(*plugins: object) -> StrategyRegistry:
    return StrategyRegistry(plugins=plugins, entry_points=False, disabled=())


def test_an_import_string_is_imported_only_when_the_strategy_is_used(lazy_module: str) -> None:
    plugin = _Plugin(
        "lazy", lazy=(f"{lazy_module}:LazyConfig", f"{lazy_module}:LazyStrategy.create")
    )
    registry = _registry(plugin)
    # Known by name, with its description and origin, before anything is imported.
    assert "lazy" in registry.names()
    assert registry.plugins[-1].strategies == ("lazy",)
    assert lazy_module not in sys.modules
    stype = registry.get("lazy")
    module = sys.modules[lazy_module]
    assert stype.config_class is module.LazyConfig
    assert stype.factory == module.LazyStrategy.create
    assert stype.description == "lazy!"
    assert stype.plugin == "lazy"
    assert module.IMPORTS == ["imported"]  # imported once, kept
    assert registry.get("lazy") is stype
    assert registry.failures == ()


def test_a_config_naming_a_lazy_strategy_loads_and_checks(lazy_module: str) -> None:
    plugin = _Plugin(
        "lazy", lazy=(f"{lazy_module}:LazyConfig", f"{lazy_module}:LazyStrategy.create")
    )
    registry = _registry(plugin)
    config = load_config(
        {"models": {"m": {"health_check": {"strategy": "lazy", "level": 3}}}}, registry=registry
    )
    assert config.models["m"].check.config.level == 3
    assert type(config.models["m"].check.config).__module__ == lazy_module


def test_a_bad_import_string_is_a_broken_plugin_and_the_rest_keeps_working(
    lazy_module: str,
) -> None:
    broken = _Plugin("broken", gone=("hk_no_such_module_xyz:Config", "hk_no_such_module_xyz:make"))
    good = _Plugin("good", lazy=(f"{lazy_module}:LazyConfig", f"{lazy_module}:LazyStrategy.create"))
    registry = _registry(broken, good)
    assert "gone" in registry.names()  # listing names imports nothing
    assert not [f.name for f in registry.failures]
    assert "gone" not in registry  # asking for it imports it: it fails
    (failure,) = registry.failures
    assert (failure.name, failure.stage, failure.error_type) == (
        "broken",
        "import",
        "ModuleNotFoundError",
    )
    assert "strategy 'gone'" in failure.message
    assert "hk_no_such_module_xyz" in failure.message
    assert "gone" not in registry.names()
    assert registry.plugins[1].strategies == ()  # the broken plugin's entry
    # Choosing it says which plugin failed, and why.
    with pytest.raises(UnknownStrategyError) as info:
        registry.get("gone")
    assert "plugin 'broken'" in str(info.value)
    assert "ModuleNotFoundError" in str(info.value)
    with pytest.raises(ConfigError) as config_info:
        load_config({"models": {"m": {"health_check": {"strategy": "gone"}}}}, registry=registry)
    assert "models.m.health_check.strategy" in str(config_info.value)
    assert "plugin 'broken' failed to load" in str(config_info.value)
    # Everything else works: the other plugin's strategy and the built-ins.
    assert registry.get("lazy").config_class.__name__ == "LazyConfig"
    assert registry.get("http").config_class.__name__ == "HttpConfig"
    assert "gone" not in registry.strategies
    assert len(registry.failures) == 1  # recorded once


def test_the_hint_for_a_strategy_names_its_own_import_failure_first() -> None:
    plugins = [
        _Plugin("aaa", first=("hk_lazy_never_f:C", "hk_lazy_never_f:make")),
        _Plugin("zzz", second=("hk_lazy_never_g:C", "hk_lazy_never_g:make")),
    ]
    registry = _registry(*plugins)
    assert "first" not in registry and "second" not in registry
    hint = registry.unknown_strategy_hint("second")
    assert hint.startswith("plugin 'zzz' failed to load: ModuleNotFoundError: strategy 'second'")
    assert "plugin 'aaa'" in hint


def test_a_missing_attribute_and_a_wrong_object_fail_like_a_plugin_would(lazy_module: str) -> None:
    plugin = _Plugin(
        "odd",
        noattr=(f"{lazy_module}:Missing", f"{lazy_module}:LazyStrategy.create"),
        notattrs=(f"{lazy_module}:NotAConfig", f"{lazy_module}:LazyStrategy.create"),
    )
    registry = _registry(plugin)
    assert set(registry.strategies).isdisjoint({"noattr", "notattrs"})
    failures = {(f.stage, f.error_type) for f in registry.failures}
    assert failures == {("import", "AttributeError"), ("register", "TypeError")}
    assert any("config must be an attrs class" in f.message for f in registry.failures)


def test_a_malformed_import_string_fails_the_plugin_at_registration() -> None:
    registrar = StrategyRegistrar("p", None, None)
    with pytest.raises(TypeError, match="config must be an attrs class or an import string"):
        registrar.add("x", config="no colon here", factory="m:f")
    with pytest.raises(TypeError, match="factory must be callable or an import string"):
        registrar.add("x", config="m:C", factory="m:")
    registry = _registry(_Plugin("typo", x=("m.c", "m:f")))
    (failure,) = registry.failures
    assert (failure.name, failure.stage) == ("typo", "register")


def test_conflicts_are_detected_without_importing_either_plugin() -> None:
    first = _Plugin("first", dup=("hk_lazy_never_a:Config", "hk_lazy_never_a:make"))
    second = _Plugin("second", dup=("hk_lazy_never_b:Config", "hk_lazy_never_b:make"))
    registry = _registry(first, second)
    (conflict,) = registry.failures
    assert (conflict.name, conflict.stage) == ("second", "conflict")
    assert "strategy 'dup'" in conflict.message and "plugin 'first'" in conflict.message
    assert "hk_lazy_never_a" not in sys.modules and "hk_lazy_never_b" not in sys.modules
    # The built-in http strategy too: a plugin taking its name is told, nothing imported.
    taken = _Plugin("taker", http=("hk_lazy_never_c:Config", "hk_lazy_never_c:make"))
    registry = _registry(taken)
    assert [(f.name, f.stage) for f in registry.failures] == [("taker", "conflict")]
    assert "hk_lazy_never_c" not in sys.modules


def test_notifiers_by_import_string(lazy_module: str) -> None:
    class Notifiers:
        __name__ = "pings"

        @hookimpl
        def healthkit_register_notifiers(self, registrar: NotifierRegistrar) -> None:
            registrar.add("ping", config=f"{lazy_module}:PingConfig", factory=f"{lazy_module}:Ping")
            registrar.add("lost", config="hk_lazy_never_d:C", factory="hk_lazy_never_d:N")

    registry = _registry(Notifiers())
    assert lazy_module not in sys.modules
    notifiers = registry.notifiers  # listing them imports them; "lost" cannot be
    assert {"ping", "webhook", "log"} <= set(notifiers) and "lost" not in notifiers
    assert notifiers["ping"].config_class.__name__ == "PingConfig"
    (failure,) = registry.failures
    assert (failure.name, failure.stage, failure.error_type) == (
        "pings",
        "import",
        "ModuleNotFoundError",
    )
    config = load_config(
        {"notifiers": [{"type": "ping", "room": "dev"}], "models": {"m": {}}}, registry=registry
    )
    assert config.notifiers[0].config.room == "dev"


def test_the_builtins_and_installed_plugins_register_without_importing_their_modules() -> None:
    """In a fresh interpreter: a registry imports no strategy module until asked."""
    probe = textwrap.dedent(
        """
        import json, sys
        from healthkit import StrategyRegistry
        registry = StrategyRegistry()
        before = sorted(sys.modules)
        names = registry.names()
        fields = {
            name: sorted(f.name for f in __import__("attrs").fields(stype.config_class))
            for name, stype in registry.strategies.items()
        }
        print(json.dumps({"before": before, "names": names, "fields": fields,
                          "failures": [str(f) for f in registry.failures]}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    data = json.loads(proc.stdout)
    before = set(data["before"])
    for module in (
        "healthkit.strategies.http._config",
        "healthkit.strategies.grpc._config",
        "healthkit.strategies.composite",
        "healthkit.strategies.federation._config",
        "healthkit.strategies.noop",
        "healthkit.notify",
        "healthkit_tcp._config",
        "healthkit_exec._config",
        "healthkit_openai._config",
        "grpc",
    ):
        assert module not in before, module
    assert {"noop", "http", "grpc", "composite", "healthkit", "tcp", "exec", "openai"} <= set(
        data["names"]
    )
    # Listing resolves them all: every config class and its fields are there.
    assert "base_url" in data["fields"]["http"]
    assert {"host", "port"} <= set(data["fields"]["tcp"])
    assert "argv" in data["fields"]["exec"]
    assert data["failures"] == []


def test_healthkit_plugins_lists_lazy_strategies_and_a_broken_one(
    tmp_path: Path, lazy_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real entry points: a distribution registering by import strings, one of them bad."""
    source = textwrap.dedent(
        f"""
        from healthkit import hookimpl

        @hookimpl
        def healthkit_register_strategies(registrar):
            registrar.add("lazyok", config="{lazy_module}:LazyConfig",
                          factory="{lazy_module}:LazyStrategy.create", description="fine")
            registrar.add("lazybad", config="hk_lazy_never_e:Config",
                          factory="hk_lazy_never_e:make", description="broken")
        """
    )
    site = tmp_path / "site"
    site.mkdir()
    (site / "hk_lazy_ep_plugin.py").write_text(source, encoding="utf-8")
    info = site / "hk_lazy_ep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hk-lazy-ep\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[healthkit]\nlazyep = hk_lazy_ep_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("HEALTHKIT_DISABLE_PLUGINS", raising=False)
    try:
        result = CliRunner().invoke(cli, ["plugins", "--format", "json"])
    finally:
        sys.modules.pop("hk_lazy_ep_plugin", None)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    listed = {s["name"]: s for s in data["strategies"]}
    assert listed["lazyok"]["plugin"] == "lazyep"
    assert listed["lazyok"]["distribution"] == "hk-lazy-ep"
    assert listed["lazyok"]["version"] == "1.0"
    assert "lazybad" not in listed
    (failure,) = [f for f in data["failures"] if f["plugin"] == "lazyep"]
    assert failure["stage"] == "import"
    assert "lazybad" in failure["error"] and "hk_lazy_never_e" in failure["error"]
