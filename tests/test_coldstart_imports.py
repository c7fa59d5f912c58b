"""A one-shot ``healthkit check`` of an http config imports only what it uses.

Kubernetes exec probes and cron checks start ``healthkit check`` every few
seconds on every pod (issue 12): the other strategies, the notifiers, the web
server, grpc, yaml and prometheus are not loaded unless the config uses them.
Each test runs the real CLI in a fresh interpreter against a real loopback
server and reads that interpreter's ``sys.modules``; no timing is asserted
(``benchmarks/run.py coldstart`` prints the figures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from healthkit.testing import OipServer

#: Run ``healthkit check`` as ``python -m healthkit`` does, then write the modules loaded.
_PROBE = """
import json, runpy, sys
out, *args = sys.argv[1:]
sys.argv = ["healthkit", *args]
try:
    runpy.run_module("healthkit", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

#: Not needed by a check of one http model: each has a cost at every probe.
UNUSED = (
    "grpc",
    "yaml",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "difflib",
    "healthkit.notify",
    "healthkit._notifier",
    "healthkit.history",
    "healthkit.asgi",
    "healthkit._monitor",
    "healthkit._configuration._history",
    "healthkit._configuration._notifiers",
    "healthkit.strategies.grpc._config",
    "healthkit.strategies.composite",
    "healthkit.strategies.federation._config",
    "healthkit.strategies.federation._strategy",
    # The plugins installed in this environment register by import strings.
    "healthkit_tcp._config",
    "healthkit_exec._config",
    "healthkit_openai._config",
)


def _check_modules(tmp_path: Path, config: str, *args: str) -> tuple[int, set[str]]:
    path = tmp_path / "healthkit.toml"
    path.write_text(config, encoding="utf-8")
    out = tmp_path / "modules.json"
    argv = [sys.executable, "-c", _PROBE, str(out), "check", str(path), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    return data["code"], set(data["modules"])


def _loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_a_one_shot_http_check_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    with OipServer(["alpha"]) as server:
        config = f'[models.alpha.health_check]\nstrategy = "http"\nbase_url = "{server.url}"\n'
        code, modules = _check_modules(tmp_path, config, "--model", "alpha")
        assert server.requests["/v2/models/alpha/ready"] == 1
    assert code == 0  # healthy: the check really ran, through the http strategy
    assert "healthkit.strategies.http._strategy" in modules
    assert [name for name in UNUSED if _loaded(modules, name)] == []


def test_the_sections_and_strategies_a_config_uses_are_imported(tmp_path: Path) -> None:
    """The other side: laziness never leaves out what a config needs."""
    with OipServer(["alpha"]) as server:
        port = server.url.rsplit(":", 1)[1]
        http = f'{{ strategy = "http", base_url = "{server.url}" }}'
        tcp = f'{{ strategy = "tcp", host = "127.0.0.1", port = {port} }}'
        config = f"""
[history]
path = "{tmp_path / "history.db"}"

[[notifiers]]
type = "log"

[models.alpha.health_check]
strategy = "composite"
checks = [{http}, {tcp}]
"""
        code, modules = _check_modules(tmp_path, config, "--model", "alpha")
    assert code == 0
    for name in (
        "healthkit.strategies.composite",
        "healthkit_tcp._config",
        "healthkit_tcp._strategy",
        "healthkit._configuration._history",
        "healthkit._configuration._notifiers",
        "healthkit.notify._log",
    ):
        assert name in modules, name
