"""Plugins as real distributions: installed with pip, found through the ``healthkit`` entry point.

Four tiny distributions are built and pip-installed into a throwaway virtual
environment that sees this one's packages (healthkit, pytest, ...): one that
raises at import, one that raises while registering, one that registers a name
that is already taken, and a good one. ``healthkit plugins`` and ``healthkit
check`` then run in that environment, as a user would run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from healthkit.testing import OipServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX virtual environments")

GOOD_PLUGIN = """
from typing import Literal

import attrs
from healthkit import CheckResult, Status, hookimpl

@attrs.frozen(kw_only=True)
class GoodConfig:
    answer: Literal["healthy", "degraded", "unhealthy"] = "healthy"

class GoodStrategy:
    def __init__(self, config):
        self.config = config

    async def acheck(self, target):
        return CheckResult(status=Status(self.config.answer), strategy="good", target=target,
                           detail=f"the good plugin says {self.config.answer}")

    async def aclose(self):
        return None

@hookimpl
def healthkit_register_strategies(registrar):
    registrar.add("good", config=GoodConfig, factory=lambda c, ctx: GoodStrategy(c),
                  description="a well-behaved test plugin")
"""

BROKEN_IMPORT = """
raise RuntimeError("boom at import")
"""

BROKEN_REGISTER = """
from healthkit import hookimpl

@hookimpl
def healthkit_register_strategies(registrar):
    raise ValueError("boom while registering")
"""

DUPLICATE = """
import attrs
from healthkit import CheckResult, Status, hookimpl

@attrs.frozen
class Empty:
    pass

class Fine:
    async def acheck(self, target):
        return CheckResult(status=Status.HEALTHY, strategy="dup_ok", target=target, detail="fine")

    async def aclose(self):
        return None

@hookimpl
def healthkit_register_strategies(registrar):
    # "noop" is built in: refused with an error naming both; "dup_ok" still registers.
    registrar.add("noop", config=Empty, factory=lambda c, ctx: Fine())
    registrar.add("dup_ok", config=Empty, factory=lambda c, ctx: Fine())
"""


@attrs.frozen
class Dist:
    name: str
    entry_point: str
    module: str
    code: str
    version: str = "1.2.3"


DISTS = [
    Dist("hk-test-good", "good", "hk_test_good", GOOD_PLUGIN),
    Dist("hk-test-broken-import", "broken_import", "hk_test_broken_import", BROKEN_IMPORT),
    Dist("hk-test-broken-register", "broken_register", "hk_test_broken_register", BROKEN_REGISTER),
    Dist("hk-test-duplicate", "duplicate", "hk_test_duplicate", DUPLICATE),
]


def write_project(root: Path, dist: Dist) -> Path:
    project = root / dist.name
    (project / "src" / dist.module).mkdir(parents=True)
    (project / "src" / dist.module / "__init__.py").write_text(textwrap.dedent(dist.code))
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{dist.name}"
            version = "{dist.version}"
            dependencies = ["model-healthkit"]

            [project.entry-points.healthkit]
            {dist.entry_point} = "{dist.module}"

            [tool.hatch.build.targets.wheel]
            packages = ["src/{dist.module}"]
            """
        )
    )
    return project


@attrs.frozen
class Env:
    """A virtual environment that sees this interpreter's packages plus its own."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k != "HEALTHKIT_DISABLE_PLUGINS"}
        full_env.update(env or {})
        return subprocess.run(
            [str(self.python), *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=120,
            check=False,
        )

    def healthkit(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "healthkit", *args, env=env)

    def pip_install(self, *projects: Path) -> None:
        # Offline and fast: no index, no build isolation (hatchling comes from the test extra).
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(self.python),
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                *map(str, projects),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def make_env(root: Path) -> Env:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120
    )
    env = Env(root)
    site = subprocess.run(
        [str(env.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # addsitedir (not a plain path line) so this environment's own .pth files, such as
    # editable installs, work there too.
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    Path(site, "_healthkit_test_parent.pth").write_text(lines)
    return env


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    base = tmp_path_factory.mktemp("plugin-dists")
    env = make_env(base / "venv")
    env.pip_install(*(write_project(base / "src", dist) for dist in DISTS))
    return env


@pytest.fixture(scope="module")
def oip() -> Iterator[OipServer]:
    server = OipServer({"alpha": "ready"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def plugins_json(env: Env, **extra_env: str) -> dict[str, Any]:
    done = env.healthkit("plugins", "--format", "json", env=extra_env)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_the_distributions_are_really_installed(plugin_env: Env) -> None:
    script = textwrap.dedent(
        """
        import importlib.metadata, json
        ours = {"good", "broken_import", "broken_register", "duplicate"}
        found = [
            (ep.name, ep.dist.metadata["Name"], ep.dist.version, str(ep.dist.locate_file("")))
            for ep in importlib.metadata.entry_points(group="healthkit")
            if ep.name in ours
        ]
        print(json.dumps(sorted(found)))
        """
    )
    done = plugin_env.run("-c", script)
    found = json.loads(done.stdout)
    assert [(name, dist, version) for name, dist, version, _ in found] == [
        ("broken_import", "hk-test-broken-import", "1.2.3"),
        ("broken_register", "hk-test-broken-register", "1.2.3"),
        ("duplicate", "hk-test-duplicate", "1.2.3"),
        ("good", "hk-test-good", "1.2.3"),
    ]
    # Installed by pip into the throwaway environment, not into this one.
    assert all(path.startswith(str(plugin_env.root)) for *_, path in found)


def test_plugins_reports_each_failure_with_its_error(plugin_env: Env) -> None:
    data = plugins_json(plugin_env)
    failures = {f["plugin"]: f for f in data["failures"]}
    assert failures["broken_import"]["stage"] == "import"
    assert failures["broken_import"]["error"] == "RuntimeError: boom at import"
    assert failures["broken_import"]["distribution"] == "hk-test-broken-import"
    assert failures["broken_register"]["stage"] == "register"
    assert failures["broken_register"]["error"] == "ValueError: boom while registering"
    conflict = failures["duplicate"]
    assert conflict["stage"] == "conflict"
    # The error names both origins.
    assert "'noop'" in conflict["error"] and "hk-test-duplicate" in conflict["error"]
    assert "healthkit.builtin" in conflict["error"]
    strategies = {s["name"]: s for s in data["strategies"]}
    assert strategies["good"]["distribution"] == "hk-test-good"
    assert strategies["good"]["version"] == "1.2.3"
    assert strategies["dup_ok"]["plugin"] == "duplicate"
    assert strategies["noop"]["plugin"] == "healthkit.builtin"  # never overwritten
    assert {"composite", "http", "noop"} <= set(strategies)


def test_plugins_table_shows_the_errors(plugin_env: Env) -> None:
    done = plugin_env.healthkit("plugins")
    assert done.returncode == 0, done.stderr
    for text in ("boom at import", "boom while registering", "hk-test-good 1.2.3", "good"):
        assert text in done.stdout
    # The report is the output; the failures are not repeated as log noise on stderr.
    assert "boom" not in done.stderr


def test_the_good_strategy_is_usable_by_name_and_the_rest_keeps_working(
    plugin_env: Env, oip: OipServer, tmp_path: Path
) -> None:
    config = tmp_path / "healthkit.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [models.alpha.health_check]
            strategy = "http"
            base_url = "{oip.url}"

            [models.beta.health_check]
            strategy = "good"
            answer = "degraded"

            [models.gamma.health_check]
            strategy = "dup_ok"

            [models.delta.health_check]
            strategy = "noop"
            """
        )
    )
    done = plugin_env.healthkit("check", str(config), "--format", "json")
    report = json.loads(done.stdout)
    models = report["models"]
    assert {name: (m["strategy"], m["status"]) for name, m in models.items()} == {
        "alpha": ("http", "healthy"),
        "beta": ("good", "degraded"),
        "gamma": ("dup_ok", "healthy"),
        "delta": ("noop", "healthy"),
    }
    assert models["beta"]["detail"] == "the good plugin says degraded"
    assert report["status"] == "degraded"
    assert done.returncode == 1  # degraded, by the monitoring-plugins convention


def test_disabling_blocks_a_plugin(plugin_env: Env, tmp_path: Path) -> None:
    data = plugins_json(plugin_env, HEALTHKIT_DISABLE_PLUGINS="good, broken_import")
    assert "good" not in {s["name"] for s in data["strategies"]}
    stages = {f["plugin"]: f["stage"] for f in data["failures"]}
    # Disabled before import: the broken module is never even imported.
    assert stages["good"] == "disabled"
    assert stages["broken_import"] == "disabled"
    assert stages["broken_register"] == "register"

    config = tmp_path / "uses-good.toml"
    config.write_text('[models.beta.health_check]\nstrategy = "good"\n')
    blocked = plugin_env.healthkit("check", str(config), env={"HEALTHKIT_DISABLE_PLUGINS": "good"})
    assert blocked.returncode == 3
    assert "models.beta.health_check.strategy" in blocked.stderr
    assert "unknown strategy 'good'" in blocked.stderr
    allowed = plugin_env.healthkit("check", str(config))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_the_repository_plugins_are_installed_and_usable(tmp_path: Path) -> None:
    """CI installs plugins/healthkit-* from the repository (requirements-test.txt)."""
    run = [sys.executable, "-m", "healthkit"]
    clean = {k: v for k, v in os.environ.items() if k != "HEALTHKIT_DISABLE_PLUGINS"}
    listed = subprocess.run(
        [*run, "plugins", "--format", "json"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    strategies = {s["name"]: s["distribution"] for s in json.loads(listed.stdout)["strategies"]}
    assert strategies["tcp"] == "healthkit-tcp"
    assert strategies["exec"] == "healthkit-exec"
    assert strategies["openai"] == "healthkit-openai"

    with OipServer({"alpha": "ready"}) as oip:
        config = tmp_path / "plugins.toml"
        config.write_text(
            textwrap.dedent(
                f"""
                [models.tcp-model.health_check]
                strategy = "tcp"
                host = "127.0.0.1"
                port = {oip.port}

                [models.exec-model.health_check]
                strategy = "exec"
                argv = ["{sys.executable}", "-c", "print('fine')"]
                timeout = 10

                [models.openai-model.health_check]
                strategy = "openai"
                base_url = "{oip.url}"
                endpoints = ["health"]
                health_path = "/v2/health/ready"
                """
            )
        )
        done = subprocess.run(
            [*run, "check", str(config), "--format", "json"],
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    report = json.loads(done.stdout)
    assert {name: (m["strategy"], m["status"]) for name, m in report["models"].items()} == {
        "tcp-model": ("tcp", "healthy"),
        "exec-model": ("exec", "healthy"),
        "openai-model": ("openai", "healthy"),
    }, report
    assert done.returncode == 0
