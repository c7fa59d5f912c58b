"""What a registry does at start-up, made cheaper for one-shot checks (issue 12), unchanged.

Every ``healthkit check`` builds a registry: it finds the entry points of group
``healthkit`` with a cheaper walk than ``importlib.metadata.entry_points`` and
defines :class:`~healthkit.PluginFailure` only when a plugin fails. These tests
hold the walk to exactly what the standard call returns (real distributions on
``sys.path``, including shadowed ones) and check the failure record is the same
class by every import path. No timing is asserted (``benchmarks/run.py
coldstart`` prints the figures).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import healthkit
from healthkit import Resolver, StrategyRegistry, StrategySpec
from healthkit._plugins import Distributions
from healthkit.testing import OipServer


def _described(eps: object) -> list[tuple[str, str, str | None, str | None]]:
    out = []
    for ep in eps:  # type: ignore[attr-defined]
        dist = getattr(ep, "dist", None)
        if dist is not None:
            out.append((ep.name, ep.value, dist.metadata["Name"], dist.version))
        else:
            out.append((ep.name, ep.value, ep.distribution, ep.version))
    return out


def _standard(group: str) -> list[tuple[str, str, str | None, str | None]]:
    return _described(importlib.metadata.entry_points(group=group))


def _found(group: str) -> list[tuple[str, str, str | None, str | None]]:
    return _described(Distributions().entry_points(group))


@pytest.mark.parametrize("group", ["healthkit", "console_scripts", "pytest11", "no-such-group"])
def test_the_entry_points_of_this_environment_are_those_of_importlib_metadata(group: str) -> None:
    assert _found(group) == _standard(group)


def test_the_repository_plugins_are_found() -> None:
    # The walk above is compared with the standard call: make sure it is not comparing
    # two empty lists (the three plugins under plugins/ are installed in this environment).
    names = {name for name, *_ in _found("healthkit")}
    assert {"tcp", "exec", "openai"} <= names


def _dist(
    site: Path, name: str, version: str, entry_points: str | None, *, stem: str | None = None
) -> None:
    # As wheels name them: the name's '-' as '_' (the first '-' ends the name).
    info = site / f"{stem or name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    if entry_points is not None:
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points), encoding="utf-8")


def test_shadowed_and_look_alike_distributions_are_handled_as_importlib_metadata_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    # The first of a name on sys.path wins, even when it has no healthkit entry point...
    _dist(first, "hk-shadowed", "1.0", None)
    _dist(second, "hk-shadowed", "2.0", "[healthkit]\nshadowed = shadowed_plugin\n")
    # ...and when both have one (names compared normalized: '.', '-', '_', case).
    _dist(first, "HK.Twice", "1.0", "[healthkit]\ntwice = twice_one\n", stem="hk_twice")
    _dist(second, "hk-twice", "2.0", "[healthkit]\ntwice = twice_two\n", stem="hk_twice")
    # The word in another group, a value or a section name that is not the group.
    _dist(
        first,
        "hk-lookalike",
        "1.0",
        """
        [console_scripts]
        healthkit-tool = healthkit_tool:main

        [healthkit.extra]
        x = healthkit_x

        [ healthkit ]
        spaced = spaced_plugin
        """,
    )
    _dist(first, "hk-empty", "1.0", "")
    _dist(
        second,
        "hk-both",
        "1.0",
        """
        [console_scripts]
        hk-both = hk_both:main

        [healthkit]
        both = hk_both.plugin
        also = hk_both.other:register
        """,
    )
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    for group in ("healthkit", "healthkit.extra", "console_scripts"):
        assert _found(group) == _standard(group), group
    mine = {entry for entry in _found("healthkit") if entry[2] is not None}
    assert ("twice", "twice_one", "HK.Twice", "1.0") in mine
    assert not any(name in ("shadowed", "spaced", "x") for name, *_ in mine)
    assert {("both", "hk_both.plugin", "hk-both", "1.0")} <= mine


def test_the_failure_record_is_one_class_by_every_import_path() -> None:
    from healthkit import _plugins, _registry
    from healthkit._plugin_failure import PluginFailure

    assert healthkit.PluginFailure is PluginFailure
    assert _registry.PluginFailure is PluginFailure
    assert _plugins.PluginFailure is PluginFailure
    with pytest.raises(AttributeError, match="no_such_name"):
        _registry.no_such_name  # noqa: B018
    with pytest.raises(AttributeError, match="no_such_name"):
        _plugins.no_such_name  # noqa: B018


def test_a_failing_plugin_is_recorded_with_the_public_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hk_broken_module.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = StrategyRegistry(entry_points=False, modules="hk_broken_module")
    (failure,) = registry.failures
    assert isinstance(failure, healthkit.PluginFailure)
    assert (failure.name, failure.stage, failure.error_type, failure.message) == (
        "hk_broken_module",
        "import",
        "RuntimeError",
        "boom",
    )
    assert "http" in registry  # the rest keeps working


def test_a_registry_whose_plugins_all_load_does_not_define_the_failure_record() -> None:
    code = (
        "import sys; from healthkit._registry import StrategyRegistry; r = StrategyRegistry();"
        " assert not r.failures, r.failures; print('healthkit._plugin_failure' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


#: ``python -m healthkit ARGS...``, then its exit code and the healthkit modules it loaded.
_PROBE = """
import runpy, sys
sys.argv = ["healthkit", *sys.argv[1:]]
try:
    runpy.run_module("healthkit", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("--probe--", code)
print(*sorted(m for m in sys.modules if m.startswith("healthkit")), sep="\\n")
"""


def test_a_one_shot_check_defines_neither_the_failure_nor_the_plan_record(tmp_path: Path) -> None:
    with OipServer(["alpha"]) as server:
        path = tmp_path / "healthkit.toml"
        path.write_text(
            f'[models.alpha.health_check]\nstrategy = "http"\nbase_url = "{server.url}"\n',
            encoding="utf-8",
        )
        argv = [sys.executable, "-c", _PROBE, "check", str(path), "--model", "alpha"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    report, _, probe = proc.stdout.partition("--probe--")
    code, *modules = probe.split()
    assert code == "0", proc.stderr + report  # the check really ran, healthy
    assert "healthkit.strategies.http._strategy" in modules
    assert "healthkit._plugin_failure" not in modules
    assert "healthkit._plan" not in modules


def test_the_plan_record_is_one_class_by_every_import_path() -> None:
    from healthkit import _resolver
    from healthkit._plan import PlannedInstance

    assert _resolver.PlannedInstance is PlannedInstance
    spec = StrategySpec(strategy="noop", config=None)
    (planned,) = Resolver.plan([("a", spec), ("b", spec)])
    assert planned == PlannedInstance(id=1, spec=spec, models=("a", "b"), used_by=(), children=())
    with pytest.raises(AttributeError, match="no_such_name"):
        _resolver.no_such_name  # noqa: B018
