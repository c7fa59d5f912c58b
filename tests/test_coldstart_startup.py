"""The cyclic garbage collector during a one-shot command's start-up (issue 12).

The process entry point (``healthkit`` / ``python -m healthkit``) pauses the
collector until start-up is over (``check``: its strategy instances exist; any
other command: once it is found), then freezes what start-up built and resumes
it, so checks run with the collector on. A plugin module records what it sees:
at import (start-up), when its instance is created (start-up) and when it checks.
The CLI run in-process, and a process whose collector someone else turned off,
are left alone. No timing is asserted (``benchmarks/run.py coldstart``).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from healthkit.cli import cli

PLUGIN = """
import gc

import attrs
from healthkit import CheckResult, Status, hookimpl

SEEN = {"import": gc.isenabled()}


@attrs.frozen(kw_only=True)
class ProbeConfig:
    pass


class ProbeStrategy:
    def __init__(self, config):
        self.config = config

    async def acheck(self, target):
        seen = {**SEEN, "check": gc.isenabled(), "frozen": gc.get_freeze_count() > 0}
        return CheckResult(status=Status.HEALTHY, strategy="gcprobe", target=target,
                           detail=" ".join(f"{k}={v}" for k, v in seen.items()))

    async def aclose(self):
        return None

    @classmethod
    def create(cls, config, context):
        SEEN["create"] = gc.isenabled()
        return cls(config)


@hookimpl
def healthkit_register_strategies(registrar):
    registrar.add("gcprobe", config=ProbeConfig, factory=ProbeStrategy.create)
"""

CONFIG = '[models.alpha.health_check]\nstrategy = "gcprobe"\n'


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "hk_gcprobe.py").write_text(PLUGIN, encoding="utf-8")
    config = tmp_path / "healthkit.toml"
    config.write_text(CONFIG, encoding="utf-8")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return config, {**os.environ, "PYTHONPATH": path, "HEALTHKIT_PLUGINS": "hk_gcprobe"}


def _seen(stdout: str) -> dict[str, str]:
    detail = json.loads(stdout)["models"]["alpha"]["detail"]
    return dict(part.split("=") for part in detail.split())


def _check(argv: list[str], config: Path, env: dict[str, str]) -> dict[str, str]:
    """What the plugin saw during ``ARGV check CONFIG``."""
    proc = subprocess.run(
        [*argv, "check", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return _seen(proc.stdout)


def test_start_up_runs_without_the_collector_and_checks_with_it(tmp_path: Path) -> None:
    config, env = _setup(tmp_path)
    for argv in (
        [sys.executable, "-m", "healthkit"],
        [sys.executable, "-c", "from healthkit.cli import main; main()"],  # the console script
    ):
        assert _check(argv, config, env) == {
            "import": "False",
            "create": "False",
            "check": "True",
            "frozen": "True",
        }


def test_a_collector_turned_off_before_is_left_off(tmp_path: Path) -> None:
    config, env = _setup(tmp_path)
    code = "import gc; gc.disable(); from healthkit.cli import main; main()"
    assert _check([sys.executable, "-c", code], config, env) == {
        "import": "False",
        "create": "False",
        "check": "False",
        "frozen": "False",
    }


def test_any_other_command_resumes_the_collector_once_it_is_found(tmp_path: Path) -> None:
    _, env = _setup(tmp_path)
    code = (
        "import atexit, gc, sys;"
        " atexit.register(lambda: print('gc', gc.isenabled(), gc.get_freeze_count() > 0,"
        " file=sys.stderr)); from healthkit.cli import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "plugins"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gcprobe" in proc.stdout
    assert proc.stderr.splitlines()[-1] == "gc True True"


def test_the_cli_run_in_process_leaves_the_collector_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = _setup(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hk_gcprobe", raising=False)
    frozen = gc.get_freeze_count()
    result = CliRunner().invoke(
        cli, ["check", str(config), "--format", "json"], env={"HEALTHKIT_PLUGINS": "hk_gcprobe"}
    )
    assert result.exit_code == 0, result.output
    assert _seen(result.stdout) == {
        "import": "True",
        "create": "True",
        "check": "True",
        "frozen": str(frozen > 0),
    }
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
