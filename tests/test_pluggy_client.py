"""The registry is a plain pluggy client: each plugin's hook runs through pluggy's own hook
caller (a subset caller without the other plugins), so new- and old-style wrappers,
``tryfirst`` and ``trylast`` behave as pluggy documents, while a plugin that raises, returns
a value or cannot be registered fails alone and is recorded.
"""

from __future__ import annotations

import ast
from collections.abc import Generator
from pathlib import Path
from typing import Any

import attrs
import pluggy
import pytest

from healthkit import PluginFailure, StrategyRegistrar, StrategyRegistry, hookimpl
from healthkit import _hookspecs as hookspecs_module
from healthkit._registry import BUILTIN_PLUGIN
from healthkit.strategies.noop import NoopConfig, NoopStrategy

SRC = Path(__file__).resolve().parent.parent / "src" / "healthkit"


@attrs.frozen(kw_only=True)
class _Cfg:
    level: int = 0


def _factory(config: Any, context: Any) -> NoopStrategy:
    return NoopStrategy(NoopConfig())


def _add(registrar: StrategyRegistrar, *names: str) -> None:
    for name in names:
        registrar.add(name, config=_Cfg, factory=_factory)


def _make(*plugins: object) -> StrategyRegistry:
    return StrategyRegistry(plugins=plugins, entry_points=False, disabled=())


def _failures(registry: StrategyRegistry, name: str) -> list[PluginFailure]:
    return [f for f in registry.failures if f.name == name]


def _strategies_of(registry: StrategyRegistry, name: str) -> tuple[str, ...]:
    (info,) = [p for p in registry.plugins if p.name == name]
    return info.strategies


class Plain:
    def __init__(self, name: str, *strategies: str) -> None:
        self.__name__ = name
        self.strategies = strategies

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        _add(registrar, *self.strategies)


# -- wrappers ------------------------------------------------------------------------------


class NewStyleWrapper:
    """``wrapper=True``: code before and after the yield, as pluggy runs it."""

    __name__ = "new-style"

    def __init__(self) -> None:
        self.inner_result: object = "not run"

    @hookimpl(wrapper=True)
    def healthkit_register_strategies(
        self, registrar: StrategyRegistrar
    ) -> Generator[None, object, object]:
        _add(registrar, "before_yield")
        result = yield
        self.inner_result = result
        _add(registrar, "after_yield")
        return result


class OldStyleWrapper:
    """``hookwrapper=True``: the yield returns a ``pluggy.Result``."""

    __name__ = "old-style"

    def __init__(self) -> None:
        self.outcome: object = None

    @hookimpl(hookwrapper=True)
    def healthkit_register_strategies(
        self, registrar: StrategyRegistrar
    ) -> Generator[None, pluggy.Result[object], None]:
        _add(registrar, "old_before")
        outcome = yield
        self.outcome = outcome
        outcome.get_result()  # no exception inside
        _add(registrar, "old_after")


def test_a_new_style_wrapper_registers_its_strategies() -> None:
    # Before the fix the generator function was called and never run: the plugin
    # "loaded" with zero strategies and no failure.
    wrapper = NewStyleWrapper()
    registry = _make(wrapper, Plain("plain", "plain_one"))
    assert {"before_yield", "after_yield", "plain_one"} <= set(registry.names())
    assert _strategies_of(registry, "new-style") == ("before_yield", "after_yield")
    assert registry.get("after_yield").plugin == "new-style"
    # Its own hook caller: the wrapper wraps no other plugin's implementation.
    assert wrapper.inner_result == []
    assert not registry.failures


def test_an_old_style_hookwrapper_registers_its_strategies() -> None:
    wrapper = OldStyleWrapper()
    registry = _make(wrapper, Plain("plain", "plain_one"))
    assert _strategies_of(registry, "old-style") == ("old_before", "old_after")
    assert isinstance(wrapper.outcome, pluggy.Result)
    assert "plain_one" in registry
    assert not registry.failures


class WrapsItsOwnImpl:
    """A wrapper and a plain implementation in one plugin: pluggy nests them."""

    __name__ = "nested"

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl(wrapper=True, specname="healthkit_register_strategies")
    def around(self, registrar: StrategyRegistrar) -> Generator[None, object, object]:
        self.calls.append("wrapper enters")
        result = yield
        self.calls.append("wrapper leaves")
        return result

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        self.calls.append("impl")
        _add(registrar, "nested_s")


def test_a_wrapper_wraps_the_implementations_of_its_own_plugin() -> None:
    plugin = WrapsItsOwnImpl()
    registry = _make(plugin)
    assert plugin.calls == ["wrapper enters", "impl", "wrapper leaves"]
    assert _strategies_of(registry, "nested") == ("nested_s",)


class RaisingWrapper:
    __name__ = "raising-wrapper"

    @hookimpl(wrapper=True)
    def healthkit_register_strategies(
        self, registrar: StrategyRegistrar
    ) -> Generator[None, object, object]:
        _add(registrar, "lost_s")
        result = yield
        raise RuntimeError("wrapper teardown failed")
        return result  # pragma: no cover


class NotAGenerator:
    __name__ = "not-a-generator"

    @hookimpl(wrapper=True)
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> Any:
        # pluggy refuses it when the plugin registers.
        _add(registrar, "lost_s")


class YieldsTwice:
    __name__ = "yields-twice"

    @hookimpl(wrapper=True)
    def healthkit_register_strategies(
        self, registrar: StrategyRegistrar
    ) -> Generator[None, object, object]:
        _add(registrar, "lost_s")
        yield
        yield
        return None  # pragma: no cover


@pytest.mark.parametrize(
    ("plugin", "etype", "message"),
    [
        (RaisingWrapper(), "RuntimeError", "wrapper teardown failed"),
        (NotAGenerator(), "PluginValidationError", "not a generator function"),
        (YieldsTwice(), "RuntimeError", "has second yield"),
    ],
)
def test_a_failing_wrapper_fails_its_plugin_alone(plugin: object, etype: str, message: str) -> None:
    name = plugin.__name__  # type: ignore[attr-defined]
    registry = _make(plugin, Plain("good", "good_s"))
    (failure,) = _failures(registry, name)
    assert (failure.stage, failure.error_type) == ("register", etype)
    assert message in failure.message
    assert "lost_s" not in registry
    assert "good_s" in registry
    assert name not in [p.name for p in registry.plugins]
    assert registry.plugin_manager.get_plugin(name) is None


# -- ordering ------------------------------------------------------------------------------


class Ordered:
    """Registers ``shared`` plus a strategy of its own, and notes when it was called."""

    def __init__(self, name: str, calls: list[str], **marker: bool) -> None:
        self.__name__ = name
        self.calls = calls

        @hookimpl(**marker)
        def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
            calls.append(name)
            _add(registrar, "shared", f"{name}_own")

        self.healthkit_register_strategies = healthkit_register_strategies


def test_tryfirst_and_trylast_order_the_calls_and_the_first_call_keeps_a_name() -> None:
    calls: list[str] = []
    registry = _make(
        Ordered("late", calls, trylast=True),
        Ordered("plain-a", calls),
        Ordered("early", calls, tryfirst=True),
        Ordered("plain-b", calls),
    )
    # pluggy's order: tryfirst, then the others in load order, trylast at the end.
    assert calls == ["early", "plain-a", "plain-b", "late"]
    assert registry.get("shared").plugin == "early"
    losers = {f.name for f in registry.failures if f.stage == "conflict"}
    assert losers == {"plain-a", "plain-b", "late"}
    for name in ("late", "plain-a", "early", "plain-b"):
        assert f"{name}_own" in registry
    # `plugins` keeps the load order.
    assert [p.name for p in registry.plugins][1:] == ["late", "plain-a", "early", "plain-b"]


def test_a_tryfirst_plugin_takes_a_builtin_name_and_the_builtin_is_told() -> None:
    plain = _make(Plain("sneaky", "noop"))
    assert plain.get("noop").plugin == BUILTIN_PLUGIN  # without tryfirst the built-in keeps it

    class TakesNoop:
        __name__ = "takes-noop"

        @hookimpl(tryfirst=True)
        def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
            _add(registrar, "noop")

    taken = _make(TakesNoop())
    assert taken.get("noop").plugin == "takes-noop"
    (failure,) = _failures(taken, BUILTIN_PLUGIN)
    assert failure.stage == "conflict" and "takes-noop" in failure.message
    assert {"http", "composite"} <= set(taken.names())


def test_a_trylast_wrapper_is_called_like_any_plugin() -> None:
    calls: list[str] = []

    class LateWrapper:
        __name__ = "late-wrapper"

        @hookimpl(wrapper=True, trylast=True)
        def healthkit_register_strategies(
            self, registrar: StrategyRegistrar
        ) -> Generator[None, object, object]:
            calls.append("late-wrapper")
            _add(registrar, "wrapped_s")
            return (yield)

    registry = _make(LateWrapper(), Ordered("plain", calls))
    assert set(calls) == {"late-wrapper", "plain"}
    assert registry.get("wrapped_s").plugin == "late-wrapper"
    assert not registry.failures


# -- garbage -------------------------------------------------------------------------------


class ReturnsStrategies:
    """A misunderstanding of the API: returns what it meant to add."""

    __name__ = "returns"

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> object:
        _add(registrar, "half_done")
        return [("mine", _Cfg, _factory)]


class Unhashable:
    __name__ = "unhashable"
    __hash__ = None  # type: ignore[assignment]

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        _add(registrar, "unhashable_s")


def test_a_hook_returning_a_value_fails_its_plugin_alone() -> None:
    registry = _make(ReturnsStrategies(), Plain("good", "good_s"))
    (failure,) = _failures(registry, "returns")
    assert (failure.stage, failure.error_type) == ("register", "TypeError")
    assert "must return None" in failure.message and "registrar.add" in failure.message
    assert "half_done" not in registry and "good_s" in registry


def test_an_unhashable_plugin_fails_alone() -> None:
    # pluggy's subset hook caller keeps plugins in a set: one unhashable plugin must
    # not break every other plugin's call.
    registry = _make(Unhashable(), Plain("good", "good_s"))
    (failure,) = _failures(registry, "unhashable")
    assert (failure.stage, failure.error_type) == ("register", "TypeError")
    assert "unhashable_s" not in registry and "good_s" in registry


def test_the_same_object_twice_fails_the_second_name() -> None:
    class Anonymous:
        @hookimpl
        def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
            _add(registrar, "anon_s")

    plugin = Anonymous()
    registry = _make(plugin, plugin, Plain("other", "other_s"))
    assert registry.get("anon_s").plugin == "Anonymous#0"
    (failure,) = _failures(registry, "Anonymous#1")
    assert failure.stage == "register" and "already registered" in failure.message
    assert "other_s" in registry


# -- the plugin manager is pluggy's --------------------------------------------------------


def test_disabled_entry_points_are_blocked_in_the_plugin_manager() -> None:
    registry = StrategyRegistry(plugins=[Plain("kept", "kept_s")], disabled=["nope", "kept"])
    pm = registry.plugin_manager
    assert pm.is_blocked("nope")
    # a plugin passed in code always loads, even under a disabled name
    assert not pm.is_blocked("kept") and "kept_s" in registry


def test_every_hook_is_in_the_namespace_pluggy_gets() -> None:
    hooks = {
        name
        for name in vars(hookspecs_module)
        if name.startswith("healthkit_") and callable(getattr(hookspecs_module, name))
    }
    assert hooks
    assert hooks == {
        name for name in vars(hookspecs_module.HookSpecs) if name.startswith("healthkit_")
    }
    registry = _make()
    for name in hooks:
        assert getattr(registry.plugin_manager.hook, name).has_spec()


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (``from . import x`` counts as the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                names.add(node.module or "")
    return names


@pytest.mark.parametrize(
    "module", ["_registry.py", "_registrar.py", "_hookspecs.py", "strategies/_builtin.py"]
)
def test_the_plugin_modules_import_no_cycle(module: str) -> None:
    imported = _imports(SRC / module)
    # never the package itself (which imports the registry)
    assert "healthkit" not in imported
    if module != "_registry.py":
        assert "healthkit._registry" not in imported
    if module in ("_registrar.py", "_hookspecs.py"):
        assert not any(name.startswith("healthkit.strategies") for name in imported)
