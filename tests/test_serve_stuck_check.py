"""``healthkit serve`` shuts down on SIGTERM even while a check swallows its cancellation.

``asyncio.run`` (what uvicorn's ``Server.run`` uses) cancels the tasks left at
the end and waits for every one of them: a plugin check that catches
``CancelledError`` and keeps going would hold the process forever, and a
Kubernetes pod would hang in Terminating until SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")

PLUGIN = """
import asyncio
import attrs
import healthkit

@attrs.frozen(kw_only=True)
class StubbornConfig:
    timeout: float = 0.2

class Stubborn:
    async def acheck(self, target):
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass  # a broken plugin: it never lets go

    async def aclose(self):
        pass

@healthkit.hookimpl
def healthkit_register_strategies(registrar):
    registrar.add("stubborn", config=StubbornConfig, factory=lambda c, ctx: Stubborn())
"""


def test_sigterm_ends_serve_despite_a_check_that_swallows_cancellation(tmp_path: Path) -> None:
    (tmp_path / "stubborn_plugin.py").write_text(PLUGIN)
    config = tmp_path / "healthkit.toml"
    config.write_text('[models.alpha.health_check]\nstrategy = "stubborn"\nperiod = 0.2\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    stderr = (tmp_path / "stderr").open("w")
    command = [sys.executable, "-m", "healthkit", "-p", "stubborn_plugin", "serve", str(config)]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://"), (tmp_path / "stderr").read_text()
        # Wait until the monitor has cut a stubborn check at its deadline (it left it running).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            body = httpx.get(f"{url}/v2/models/alpha/ready", timeout=5).json()
            if body.get("ready") is False:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0, (tmp_path / "stderr").read_text()
