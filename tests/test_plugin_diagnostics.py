"""Diagnosing plugins: why a strategy is unknown, tracebacks on request, `-p`, quiet otherwise.

Modules given with ``-p`` come from a temporary directory on ``PYTHONPATH``;
one small distribution (two entry points) is pip-installed into a throwaway
virtual environment for what only entry points have (``HEALTHKIT_DISABLE_PLUGINS``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from healthkit import StrategyRegistry, UnknownStrategyError
from test_plugin_distributions import Env, make_env

GOOD = """
import attrs
from healthkit import CheckResult, Status, hookimpl

@attrs.frozen
class Empty:
    pass

class Fine:
    async def acheck(self, target):
        return CheckResult(status=Status.HEALTHY, strategy="diag_good", target=target, detail="ok")

    async def aclose(self):
        return None

@hookimpl
def healthkit_register_strategies(registrar):
    registrar.add("diag_good", config=Empty, factory=lambda c, ctx: Fine())
"""

BROKEN = """
import this_dependency_is_missing_for_the_test  # noqa: F401
"""


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "diag_good.py").write_text(GOOD)
    (tmp_path / "diag_broken.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("HEALTHKIT_PLUGINS", "HEALTHKIT_TRACEBACK", "HEALTHKIT_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HEALTHKIT_PLUGINS", "HEALTHKIT_TRACEBACK", "HEALTHKIT_DISABLE_PLUGINS")
    }
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "healthkit", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=60,
        check=False,
    )


# -- -p / HEALTHKIT_PLUGINS -------------------------------------------------------------


def test_modules_load_without_installing_and_a_broken_one_is_isolated(modules: Path) -> None:
    registry = StrategyRegistry(modules=["diag_broken", "diag_good"], entry_points=False)
    assert "diag_good" in registry
    assert registry.get("diag_good").plugin == "diag_good"
    (failure,) = registry.failures
    assert (failure.name, failure.stage, failure.error_type) == (
        "diag_broken",
        "import",
        "ModuleNotFoundError",
    )
    assert "Traceback (most recent call last)" in failure.traceback
    assert "this_dependency_is_missing_for_the_test" in failure.traceback


def test_modules_come_from_the_environment(modules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHKIT_PLUGINS", " diag_good, ,diag_good")
    registry = StrategyRegistry(entry_points=False)
    assert registry.modules == ("diag_good",)
    assert "diag_good" in registry


def test_cli_p_loads_a_module(modules: Path) -> None:
    done = run_cli(modules, "-p", "diag_good", "plugins", "--format", "json")
    assert done.returncode == 0, done.stderr
    names = {s["name"]: s["plugin"] for s in json.loads(done.stdout)["strategies"]}
    assert names["diag_good"] == "diag_good"


# -- why a strategy is unknown ------------------------------------------------------------


def test_unknown_strategy_says_which_plugin_failed_to_load(modules: Path) -> None:
    registry = StrategyRegistry(modules=["diag_broken"], entry_points=False)
    with pytest.raises(UnknownStrategyError) as info:
        registry.get("diag_broken")
    text = str(info.value)
    assert text.startswith("unknown strategy 'diag_broken'; known strategies: ")
    assert (
        "plugin 'diag_broken' failed to load: ModuleNotFoundError: "
        "No module named 'this_dependency_is_missing_for_the_test'"
    ) in text
    assert "healthkit --traceback plugins" in text
    assert info.value.hint and info.value.hint in text


def test_unknown_strategy_without_failures_has_no_hint() -> None:
    registry = StrategyRegistry(entry_points=False, modules=())
    with pytest.raises(UnknownStrategyError) as info:
        registry.get("nope")
    assert info.value.hint == ""
    assert "plugin" not in str(info.value)


# -- tracebacks on request, quiet otherwise -------------------------------------------------


def test_a_failed_plugin_is_not_reported_by_commands_that_do_not_use_it(modules: Path) -> None:
    (modules / "hk.toml").write_text('[models.a.health_check]\nstrategy = "noop"\n')
    done = run_cli(modules, "-p", "diag_broken", "check", "hk.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""


def test_traceback_option_shows_the_plugins_traceback(modules: Path) -> None:
    plain = run_cli(modules, "-p", "diag_broken", "plugins")
    assert plain.returncode == 0
    assert "Traceback" not in plain.stdout + plain.stderr
    assert "healthkit --traceback plugins" in plain.stdout
    for done in (
        run_cli(modules, "--traceback", "-p", "diag_broken", "plugins"),
        run_cli(modules, "-p", "diag_broken", "plugins", HEALTHKIT_TRACEBACK="1"),
    ):
        assert done.returncode == 0
        assert "traceback of plugin 'diag_broken':" in done.stdout
        assert "Traceback (most recent call last)" in done.stdout
        assert "import this_dependency_is_missing_for_the_test" in done.stdout
    as_json = run_cli(modules, "--traceback", "-p", "diag_broken", "plugins", "--format", "json")
    (failure,) = json.loads(as_json.stdout)["failures"]
    assert "Traceback (most recent call last)" in failure["traceback"]


def test_traceback_option_logs_failures_with_their_traceback_on_other_commands(
    modules: Path,
) -> None:
    (modules / "hk.toml").write_text('[models.a.health_check]\nstrategy = "noop"\n')
    done = run_cli(modules, "--traceback", "-p", "diag_broken", "check", "hk.toml")
    assert done.returncode == 0
    assert "healthkit plugin diag_broken: import failed" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr


# -- entry points: disabled ones, in a real distribution -------------------------------------

DIST_GOOD = GOOD.replace("diag_good", "diag_dist_good")
PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "hk-test-diagnostics"
version = "0.0.1"
dependencies = ["healthkit"]

[project.entry-points.healthkit]
diag_dist_good = "hk_test_diagnostics.good"
diag_dist_broken = "hk_test_diagnostics.broken"

[tool.hatch.build.targets.wheel]
packages = ["src/hk_test_diagnostics"]
"""


@pytest.fixture(scope="module")
def dist_env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    base = tmp_path_factory.mktemp("diag-dist")
    env = make_env(base / "venv")
    package = base / "project" / "src" / "hk_test_diagnostics"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(DIST_GOOD)
    (package / "broken.py").write_text(BROKEN)
    (base / "project" / "pyproject.toml").write_text(PYPROJECT)
    env.pip_install(base / "project")
    return env


def test_unknown_strategy_says_a_plugin_is_disabled_or_broken(dist_env: Env) -> None:
    script = textwrap.dedent(
        """
        from healthkit import StrategyRegistry, UnknownStrategyError
        registry = StrategyRegistry()
        try:
            registry.get("diag_dist_good")
        except UnknownStrategyError as exc:
            print(exc)
        """
    )
    done = dist_env.run("-c", script, env={"HEALTHKIT_DISABLE_PLUGINS": "diag_dist_good"})
    assert done.returncode == 0, done.stderr
    text = done.stdout
    # The plugin named like the strategy comes first.
    assert text.index("plugin 'diag_dist_good' (hk-test-diagnostics 0.0.1) is disabled by") < (
        text.index("plugin 'diag_dist_broken' (hk-test-diagnostics 0.0.1) failed to load")
    )
    assert "HEALTHKIT_DISABLE_PLUGINS" in text


def test_traceback_of_an_entry_point(dist_env: Env) -> None:
    done = dist_env.healthkit("--traceback", "plugins")
    assert done.returncode == 0, done.stderr
    assert "traceback of plugin 'diag_dist_broken':" in done.stdout
    assert "hk_test_diagnostics/broken.py" in done.stdout


def test_the_refused_port_fixture_refuses(healthkit_refused_port: int) -> None:
    import socket

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", healthkit_refused_port), timeout=5).close()


def test_check_and_validate_say_a_failed_plugin_may_be_why_a_strategy_is_unknown(
    modules: Path,
) -> None:
    (modules / "uses.toml").write_text('[models.a.health_check]\nstrategy = "diag_broken"\n')
    for command in ("check", "validate"):
        done = run_cli(modules, "-p", "diag_broken", command, "uses.toml")
        assert done.returncode == 3, done.stdout + done.stderr
        out = done.stdout + done.stderr
        assert "models.a.health_check.strategy: unknown strategy 'diag_broken'" in out
        assert "plugin 'diag_broken' failed to load: ModuleNotFoundError" in out, out
        assert "Traceback" not in out
