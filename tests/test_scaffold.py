"""``healthkit new-plugin``: the written distribution installs, registers, and passes the suite.

The real proof runs the way a plugin author would: scaffold, ``pip install`` into
a fresh virtual environment (one that sees this one's packages, so nothing is
downloaded), then ``pytest`` in the scaffold's own directory, unchanged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from healthkit import StrategyRegistry
from healthkit.cli import cli
from healthkit.cli._new_plugin import plugin_names, write_plugin
from healthkit.testing import StrategyConformance

NAME = "scaffolded-probe"


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_new_plugin_writes_a_distribution(tmp_path: Path) -> None:
    where = tmp_path / "out"
    code, output = run_cli("new-plugin", "redis-ping", str(where))
    assert code == 0, output
    files = sorted(str(p.relative_to(where)) for p in where.rglob("*") if p.is_file())
    assert files == [
        ".gitignore",
        "README.md",
        "pyproject.toml",
        "src/healthkit_redis_ping/__init__.py",
        "src/healthkit_redis_ping/_config.py",
        "src/healthkit_redis_ping/_plugin.py",
        "src/healthkit_redis_ping/_strategy.py",
        "src/healthkit_redis_ping/py.typed",
        "tests/conftest.py",
        "tests/test_healthkit_redis_ping.py",
        "tests/test_healthkit_redis_ping_conformance.py",
    ]
    pyproject = (where / "pyproject.toml").read_text()
    assert 'name = "healthkit-redis-ping"' in pyproject
    assert (
        '[project.entry-points.healthkit]\nredis-ping = "healthkit_redis_ping._plugin"' in pyproject
    )
    assert (
        "class RedisPingStrategy" in (where / "src/healthkit_redis_ping/_strategy.py").read_text()
    )
    # No placeholder survives anywhere.
    assert not [f for f in files if "__" in f.replace("__init__", "")]
    for path in where.rglob("*"):
        if path.is_file():
            assert not re.search(r"__[A-Z_]+__", path.read_text()), path
    assert "pip install -e" in output and "healthkit plugins" in output


def test_default_directory_is_named_after_the_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = run_cli("new-plugin", "gpu")
    assert code == 0, output
    assert (tmp_path / "healthkit-gpu" / "src" / "healthkit_gpu" / "_plugin.py").is_file()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Bad Name", "not a usable name"),
        ("9lives", "not a usable name"),
        ("http", "built-in strategy"),
    ],
)
def test_unusable_names_are_refused(tmp_path: Path, name: str, why: str) -> None:
    code, output = run_cli("new-plugin", name, str(tmp_path / "x"))
    assert code == 3  # a usage error is "unknown", never 2 ("unhealthy")
    assert why in output
    assert not (tmp_path / "x").exists()


def test_a_non_empty_directory_needs_force(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code, output = run_cli("new-plugin", "probe", str(tmp_path))
    assert code == 3 and "not empty" in output
    code, output = run_cli("new-plugin", "probe", str(tmp_path), "--force")
    assert code == 0, output
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert (tmp_path / "pyproject.toml").is_file()


def test_names_map_to_python_names() -> None:
    names = plugin_names("my-fancy_check")
    assert names["__DIST__"] == "healthkit-my-fancy-check"
    assert names["__PACKAGE__"] == "healthkit_my_fancy_check"
    assert names["__CLASS__"] == "MyFancyCheck"


# -- the real thing: install it and run its own tests ------------------------------------


def make_env(root: Path) -> Path:
    """A virtual environment that sees this interpreter's packages; returns its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120
    )
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    # addsitedir, so this environment's .pth files (editable installs) work there too.
    Path(site, "_healthkit_test_parent.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    )
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of the environment, scaffold directory) with the scaffold pip-installed."""
    base = tmp_path_factory.mktemp("scaffold")
    project = base / "healthkit-scaffolded-probe"
    write_plugin(NAME, project)
    python = make_env(base / "venv")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return python, project


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("HEALTHKIT_", "PYTEST_"))}


def test_the_scaffold_registers_through_its_entry_point(installed: tuple[Path, Path]) -> None:
    python, project = installed
    done = subprocess.run(
        [str(python), "-m", "healthkit", "plugins", "--format", "json"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    strategies = {s["name"]: s for s in json.loads(done.stdout)["strategies"]}
    assert strategies[NAME]["distribution"] == "healthkit-scaffolded-probe"
    assert strategies[NAME]["plugin"] == NAME
    # Imported from the installed distribution (not the scaffold's src/), which lives in
    # the throwaway environment only.
    where = subprocess.run(
        [str(python), "-c", "import healthkit_scaffolded_probe as p; print(p.__file__)"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(python.parent.parent), where
    assert NAME not in StrategyRegistry()


def test_the_scaffold_passes_its_own_tests_and_the_conformance_suite(
    installed: tuple[Path, Path],
) -> None:
    python, project = installed
    done = subprocess.run(
        [str(python), "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    suite = sorted(name for name in dir(StrategyConformance) if name.startswith("test_"))
    assert len(suite) >= 8
    passed = set(re.findall(r"::TestScaffoldedProbeConformance::(test_\w+) PASSED", output))
    assert passed == set(suite), output
    assert (
        re.search(r"\b\d+ passed\b", output) and "skipped" not in output and "failed" not in output
    )
