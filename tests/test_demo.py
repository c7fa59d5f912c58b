"""``healthkit demo``: in-process and as a real subprocess of the installed command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from click.testing import CliRunner

from healthkit import HealthKit, StrategyRegistry, load_config
from healthkit.cli import cli
from healthkit.cli._demo import DEMO_MODELS, DEMO_TOKEN, GRPC_MODEL, demo_config
from healthkit.cli._output import dedupe_plan, plan_figures

FIGURE = re.compile(r"^(\d+) models -> (\d+) strategy instances$", re.M)


def _round(output: str, number: int) -> str:
    """The table of round ``number`` in the demo output."""
    start = output.index(f"Round {number}:")
    end = output.find("Round ", start + 1)
    return output[start : end if end != -1 else len(output)]


def _status(table: str, model: str) -> str:
    match = re.search(rf"^  {re.escape(model)}\s+(\w+)\s", table, re.M)
    assert match, (model, table)
    return match.group(1)


def _check_output(output: str) -> None:
    with_grpc = "gRPC model skipped" not in output
    match = FIGURE.search(output)
    assert match, output
    models, instances = int(match.group(1)), int(match.group(2))
    # resnet, bert, whisper, flaky-llm share one http v2 instance; llama (v1), embedder (noop)
    # and ensemble (composite, whose children are those three) add one each; gRPC adds one.
    assert (models, instances) == ((8, 5) if with_grpc else (7, 4))
    first, second = _round(output, 1), _round(output, 2)
    for table in (first, second):
        assert _status(table, "resnet") == "healthy"
        assert _status(table, "whisper") == "unhealthy"
        assert _status(table, "embedder") == "healthy"
        assert _status(table, "ensemble") == "healthy"
        assert re.search(r"^  llama\s+healthy\s+http\s", table, re.M)
        assert re.search(r"^  embedder\s+healthy\s+noop\s", table, re.M)
        assert re.search(r"^  ensemble\s+healthy\s+composite\s", table, re.M)
        if with_grpc:
            assert re.search(rf"^  {GRPC_MODEL}\s+healthy\s+grpc\s", table, re.M)
    # The flaky model answers ready, then not ready: two rounds show it.
    assert _status(first, "flaky-llm") == "healthy"
    assert _status(second, "flaky-llm") == "unhealthy"
    assert "Changed between rounds: flaky-llm healthy -> unhealthy" in output
    # Every model's strategy and the shared instances are in the plan.
    assert "#4 composite mode=quorum quorum=2 checks=[#1, #2, #3]" in output
    assert "models: resnet, bert, whisper, flaky-llm" in output
    assert '"authorization": "***"' in output
    assert DEMO_TOKEN not in output


def test_demo_in_process_exits_0_and_leaves_nothing_running() -> None:
    before = {t.ident for t in threading.enumerate()}
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    _check_output(result.stdout)
    # The server's per-connection threads end once the clients closed; give them a moment.
    for thread in threading.enumerate():
        if thread.ident not in before:
            thread.join(timeout=5)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []


def test_demo_as_installed_command() -> None:
    """``healthkit demo`` in a fresh process, through the console script when it is installed."""
    script = shutil.which("healthkit", path=str(Path(sys.executable).parent)) or shutil.which(
        "healthkit"
    )
    argv = [script, "demo"] if script else [sys.executable, "-m", "healthkit", "demo"]
    env = {**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    _check_output(proc.stdout)


def test_python_dash_m_healthkit() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "healthkit", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("healthkit, version ")


async def test_demo_config_dedupes_like_a_real_resolver() -> None:
    registry = StrategyRegistry(entry_points=False, disabled=())
    config = load_config(demo_config("http://127.0.0.1:8080"), registry=registry)
    assert set(config.models) == {*DEMO_MODELS, "embedder"}
    strategies = {name: m.check.strategy for name, m in config.models.items()}
    assert set(strategies.values()) == {"http", "noop", "composite"}
    assert config.models["llama"].check.config.protocol == "v1"
    assert config.models["bert"].check == config.models["resnet"].check  # spelled differently
    async with HealthKit(config, registry=registry) as kit:
        stats = kit.stats()
    assert (stats.models, stats.instances) == plan_figures(dedupe_plan(config)) == (7, 4)
