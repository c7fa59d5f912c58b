"""The strategy registry with in-process plugins: built-ins through the public hook,
isolation of broken plugins, name conflicts naming both origins, disabled-plugin parsing,
one plugin manager per registry, and unknown names listing the known ones.

(Real installed distributions and entry points are tested in their own module.)
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import attrs
import pytest

from healthkit import (
    PluginFailure,
    StrategyConflictError,
    StrategyRegistrar,
    StrategyRegistry,
    UnknownStrategyError,
    hookimpl,
    parse_spec,
)
from healthkit._hookspecs import PROJECT_NAME
from healthkit._registry import BUILTIN_PLUGIN, DISABLE_ENV_VAR
from healthkit.strategies import _builtin
from healthkit.strategies.noop import NoopConfig, NoopStrategy


@attrs.frozen(kw_only=True)
class _Cfg:
    level: int = 0


def _factory(config: Any, context: Any) -> NoopStrategy:
    return NoopStrategy(NoopConfig())


class Plugin:
    """An in-process plugin adding the given strategy names (optionally failing after them)."""

    def __init__(self, name: str, *strategies: str, raise_after: BaseException | None = None):
        self.__name__ = name
        self.strategies = strategies
        self.raise_after = raise_after

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        for strategy in self.strategies:
            registrar.add(strategy, config=_Cfg, factory=_factory, description=f"{strategy}!")
        if self.raise_after is not None:
            raise self.raise_after


def _make(*plugins: object) -> StrategyRegistry:
    return StrategyRegistry(plugins=plugins, entry_points=False, disabled=())


def _failure(registry: StrategyRegistry, name: str) -> PluginFailure:
    (failure,) = [f for f in registry.failures if f.name == name]
    return failure


def test_builtins_register_through_the_public_hook() -> None:
    registry = _make()
    assert {"noop", "http", "composite"} <= set(registry.names())
    builtin = next(p for p in registry.plugins if p.name == BUILTIN_PLUGIN)
    assert {"noop", "http", "composite"} <= set(builtin.strategies)
    assert builtin.distribution == "healthkit"
    impls = registry.plugin_manager.hook.healthkit_register_strategies.get_hookimpls()
    assert [impl.plugin for impl in impls] == [_builtin]
    assert registry.plugin_manager.project_name == PROJECT_NAME == "healthkit"
    http = registry.get("http")
    assert (http.plugin, http.distribution) == (BUILTIN_PLUGIN, "healthkit")
    assert http.description
    assert not registry.failures


def test_without_builtins_nothing_is_registered() -> None:
    registry = StrategyRegistry(entry_points=False, builtins=False, disabled=())
    assert registry.names() == []
    assert "noop" not in registry
    with pytest.raises(UnknownStrategyError, match=r"known strategies: \(none\)"):
        registry.get("noop")


def test_in_process_plugin_adds_strategies() -> None:
    registry = _make(Plugin("acme", "acme_a", "acme-b"))
    assert {"acme_a", "acme-b"} <= set(registry.names())
    stype = registry.get("acme_a")
    assert stype.config_class is _Cfg
    assert stype.factory is _factory
    assert stype.description == "acme_a!"
    assert stype.plugin == "acme"
    assert stype.origin == "plugin 'acme'"
    info = next(p for p in registry.plugins if p.name == "acme")
    assert info.strategies == ("acme_a", "acme-b")
    # a plugin's strategy is configurable like a built-in one
    assert parse_spec({"strategy": "acme_a", "level": 3}, registry=registry).config == _Cfg(level=3)


def test_plugin_objects_without_a_name_get_one() -> None:
    class Anonymous:
        @hookimpl
        def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
            registrar.add("anon", config=_Cfg, factory=_factory)

    registry = _make(Anonymous())
    assert registry.get("anon").plugin == "Anonymous#0"


@pytest.mark.parametrize(
    ("error", "etype", "message"),
    [
        (RuntimeError("kaboom"), "RuntimeError", "kaboom"),
        (ImportError("No module named 'torch'"), "ImportError", "No module named 'torch'"),
        (SystemExit(3), "SystemExit", "3"),
    ],
)
def test_a_plugin_whose_hook_raises_is_isolated(
    error: BaseException, etype: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = Plugin("good", "good_one")
    bad = Plugin("bad", "bad_one", raise_after=error)
    with caplog.at_level(logging.DEBUG, logger="healthkit"):
        registry = _make(bad, good)
    # none of the bad plugin's strategies, not even those added before it raised
    assert "bad_one" not in registry
    assert {"good_one", "noop", "http", "composite"} <= set(registry.names())
    failure = _failure(registry, "bad")
    assert (failure.stage, failure.error_type, failure.message) == ("register", etype, message)
    assert [p.name for p in registry.plugins] == [BUILTIN_PLUGIN, "good"]
    assert registry.plugin_manager.get_plugin("bad") is None  # unregistered again
    assert "bad" in caplog.text and message in caplog.text
    with pytest.raises(UnknownStrategyError):
        registry.get("bad_one")


@pytest.mark.parametrize(
    ("strategies", "expected"),
    [
        (("bad name",), "strategy name must be a non-empty identifier, got 'bad name'"),
        (("",), "strategy name must be a non-empty identifier"),
        (("dup", "dup"), "plugin 'p' registers 'dup' twice"),
    ],
)
def test_malformed_registrations_fail_the_plugin(
    strategies: tuple[str, ...], expected: str
) -> None:
    registry = _make(Plugin("p", *strategies))
    assert expected in _failure(registry, "p").message
    assert "noop" in registry


def test_registrar_checks_config_and_factory() -> None:
    registrar = StrategyRegistrar("p", None, None)
    with pytest.raises(TypeError, match="config must be an attrs class"):
        registrar.add("x", config=dict, factory=_factory)
    with pytest.raises(TypeError, match="factory must be callable"):
        registrar.add("x", config=_Cfg, factory="nope")  # type: ignore[arg-type]
    with pytest.raises(StrategyConflictError, match="twice"):
        registrar.add("x", config=_Cfg, factory=_factory)
        registrar.add("x", config=_Cfg, factory=_factory)


def test_hookimpl_with_an_unknown_argument_fails_registration() -> None:
    class Wrong:
        __name__ = "wrong"

        @hookimpl
        def healthkit_register_strategies(self, registrar: Any, extra: Any) -> None:
            raise AssertionError("never called")

    registry = _make(Wrong(), Plugin("fine", "fine_one"))
    failure = _failure(registry, "wrong")
    assert failure.stage == "register"
    assert "extra" in failure.message
    assert "fine_one" in registry


def test_two_plugins_with_one_name_fail_the_second() -> None:
    registry = _make(Plugin("twin", "first_s"), Plugin("twin", "second_s"))
    assert "first_s" in registry and "second_s" not in registry
    assert _failure(registry, "twin").stage == "register"


def test_duplicate_strategy_names_are_a_conflict_naming_both_origins() -> None:
    first = Plugin("alpha-plugin", "shared", "alpha_only")
    second = Plugin("beta-plugin", "shared", "beta_only")
    registry = _make(first, second)
    # no silent overwrite: the first keeps the name, the second's other strategies still work
    assert registry.get("shared").plugin == "alpha-plugin"
    assert {"alpha_only", "beta_only"} <= set(registry.names())
    failure = _failure(registry, "beta-plugin")
    assert failure.stage == "conflict"
    assert failure.error_type == "StrategyConflictError"
    assert "'shared'" in failure.message
    assert "plugin 'alpha-plugin'" in failure.message
    assert "plugin 'beta-plugin'" in failure.message
    info = next(p for p in registry.plugins if p.name == "beta-plugin")
    assert info.strategies == ("beta_only",)


def test_overriding_a_builtin_name_is_a_conflict_too() -> None:
    registry = _make(Plugin("sneaky", "http"))
    assert registry.get("http").plugin == BUILTIN_PLUGIN
    failure = _failure(registry, "sneaky")
    assert failure.stage == "conflict"
    assert BUILTIN_PLUGIN in failure.message and "healthkit" in failure.message


def test_unknown_strategy_lists_known_ones() -> None:
    registry = _make(Plugin("acme", "acme"))
    with pytest.raises(UnknownStrategyError) as exc:
        registry.get("acmee")
    assert isinstance(exc.value, LookupError)
    assert exc.value.name == "acmee"
    assert exc.value.known == tuple(registry.names())
    assert str(exc.value) == (
        f"unknown strategy 'acmee'; known strategies: {', '.join(registry.names())}"
    )


def test_queries() -> None:
    registry = _make(Plugin("z", "zeta", "alpha_s"))
    assert registry.names() == sorted(registry.names())
    assert list(registry.strategies) == registry.names()
    with pytest.raises(TypeError):
        registry.strategies["x"] = registry.get("zeta")  # type: ignore[index]
    assert "zeta" in registry and "nope" not in registry and 3 not in registry
    assert repr(registry).startswith("<StrategyRegistry strategies=[")


def test_each_registry_has_its_own_plugin_manager() -> None:
    one = _make(Plugin("only-here", "only_here"))
    two = _make()
    assert one.plugin_manager is not two.plugin_manager
    assert "only_here" in one and "only_here" not in two
    assert one.plugin_manager.get_plugin("only-here") is not None
    assert two.plugin_manager.get_plugin("only-here") is None
    # a plugin object can be used by two registries independently
    shared = Plugin("shared-plugin", "s1")
    a, b = _make(shared), _make(shared)
    assert "s1" in a and "s1" in b


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("", frozenset()),
        ("acme", {"acme"}),
        ("acme,other", {"acme", "other"}),
        (" acme , ,other,, ", {"acme", "other"}),
    ],
)
def test_disabled_plugins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: set[str]
) -> None:
    monkeypatch.setenv(DISABLE_ENV_VAR, env)
    assert StrategyRegistry(entry_points=False).disabled == expected


def test_explicit_disabled_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV_VAR, "from-env")
    assert StrategyRegistry(entry_points=False, disabled=["a", " b "]).disabled == {"a", "b"}
    assert StrategyRegistry(entry_points=False, disabled="a, b").disabled == {"a", "b"}
    assert StrategyRegistry(entry_points=False, disabled=()).disabled == frozenset()
    monkeypatch.delenv(DISABLE_ENV_VAR)
    assert StrategyRegistry(entry_points=False).disabled == frozenset()


def test_disabling_names_entry_points_not_plugins_passed_in_code() -> None:
    # Plugins handed over in code are the caller's explicit choice; the variable blocks
    # what installation brought in (entry points) by entry-point name.
    registry = StrategyRegistry(
        plugins=[Plugin("acme", "acme_s")], entry_points=False, disabled=["acme"]
    )
    assert "acme_s" in registry
    assert not registry.failures


def test_a_module_plugin_works_like_an_object() -> None:
    module = types.ModuleType("hk_test_module_plugin")

    @hookimpl
    def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
        registrar.add("from_module", config=_Cfg, factory=_factory)

    module.healthkit_register_strategies = healthkit_register_strategies  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        registry = _make(module)
    finally:
        del sys.modules[module.__name__]
    assert registry.get("from_module").plugin == "hk_test_module_plugin"


def test_plugin_failure_str() -> None:
    failure = PluginFailure(
        name="acme",
        distribution="acme-dist",
        version="1.2",
        stage="import",
        error_type="ImportError",
        message="no torch",
    )
    assert str(failure) == "acme (acme-dist 1.2): import failed: ImportError: no torch"
    bare = attrs.evolve(failure, distribution=None, version=None)
    assert str(bare) == "acme: import failed: ImportError: no torch"


def test_plugin_failure_str_names_plugin_distribution_and_error() -> None:
    from healthkit import PluginFailure

    def failure(dist: str | None, version: str | None) -> str:
        return str(
            PluginFailure(
                name="p",
                distribution=dist,
                version=version,
                stage="import",
                error_type="ImportError",
                message="boom",
            )
        )

    assert failure("pkg", "1.0") == "p (pkg 1.0): import failed: ImportError: boom"
    assert failure("pkg", None) == "p (pkg): import failed: ImportError: boom"
    assert failure(None, None) == "p: import failed: ImportError: boom"
