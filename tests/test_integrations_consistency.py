"""The integrations behave alike: a closed object raises ``ClosedError`` (the KServe adapter
raised a plain ``RuntimeError``), a kit's lifecycle only moves forward, and every module of
healthkit logs under the ``healthkit`` logger tree.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import attrs
import pytest

from healthkit import (
    CheckResult,
    ClosedError,
    HealthKit,
    ServerConfig,
    Status,
    StrategyRegistrar,
    StrategyRegistry,
    StrategySpec,
    Target,
    hookimpl,
    load_config,
)
from healthkit.kserve import KServeHealth

SRC = Path(__file__).resolve().parent.parent / "src" / "healthkit"
CONFIG = {"models": {"alpha": {"health_check": {"strategy": "noop"}}}}


class _NoDataPlane:
    """Stands in for KServe's data plane: a closed adapter must not touch it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the closed adapter used the data plane ({name})")


async def test_a_closed_kserve_adapter_raises_closed_error() -> None:
    registry = StrategyRegistry(entry_points=False, disabled=())
    health = KServeHealth(_NoDataPlane(), load_config(CONFIG, registry=registry))
    await health.aclose()
    with pytest.raises(ClosedError, match="closed"):
        await health.astart()
    assert await health.ready() is False


class _HeldClose:
    """A strategy whose close waits until the test lets it go."""

    def __init__(self, config: _HeldConfig) -> None:
        self.config = config

    async def acheck(self, target: Target) -> CheckResult:
        return CheckResult(status=Status.HEALTHY, strategy="held", target=target)

    async def aclose(self) -> None:
        self.config.closing.set()
        await self.config.release.wait()


@attrs.frozen(kw_only=True)
class _HeldConfig:
    version: int = 0
    closing: asyncio.Event = attrs.field(factory=asyncio.Event, eq=False)
    release: asyncio.Event = attrs.field(factory=asyncio.Event, eq=False)


class _HeldPlugin:
    __name__ = "held"

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        registrar.add("held", config=_HeldConfig, factory=lambda config, _: _HeldClose(config))


async def test_a_kit_closed_during_a_reload_stays_closed() -> None:
    registry = StrategyRegistry(plugins=[_HeldPlugin()], entry_points=False, disabled=())
    first = _HeldConfig(version=1)
    kit = HealthKit(_config(registry, first), registry=registry)
    await kit.astart()
    # The reload closes the old instance, whose close waits: the kit is closed meanwhile.
    second = _HeldConfig(version=2)
    second.release.set()  # the new instance closes at once
    reloading = asyncio.ensure_future(kit.areload(_config(registry, second)))
    await asyncio.wait_for(first.closing.wait(), 5)
    closing = asyncio.ensure_future(kit.aclose())
    first.release.set()
    await asyncio.wait_for(asyncio.gather(reloading, closing), 5)
    # The reload finished after the close: it must not bring the kit back to life.
    with pytest.raises(ClosedError):
        await kit.acheck("alpha")
    with pytest.raises(ClosedError):
        await kit.astart()


def _config(registry: StrategyRegistry, config: _HeldConfig) -> ServerConfig:
    loaded = load_config(
        {"models": {"alpha": {"health_check": {"strategy": "noop"}}}}, registry=registry
    )
    spec = StrategySpec(strategy="held", config=config)
    models = {n: attrs.evolve(m, check=spec) for n, m in loaded.models.items()}
    return attrs.evolve(loaded, models=models)


def test_every_logger_is_in_the_healthkit_tree() -> None:
    names: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names[str(path.relative_to(SRC))] = str(node.args[0].value)
    assert names
    stray = {p: n for p, n in names.items() if n != "healthkit" and not n.startswith("healthkit.")}
    assert stray == {}
