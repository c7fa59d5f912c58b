"""``healthkit demo --serve``: the demo config served with history on and the status page."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx

from healthkit.cli._demo import DEMO_TOKEN


def test_demo_serve_shows_the_status_page_with_history_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthkit", "demo", "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("healthkit: serving"):
            line = proc.stdout.readline()
            assert line, f"demo --serve ended early: {proc.poll()}"
            lines.append(line.strip())
        url = lines[-1].rsplit(" ", 1)[-1]
        deadline = time.monotonic() + 20
        while True:
            ready = httpx.get(f"{url}/v2/models/resnet/ready", timeout=5)
            not_ready = httpx.get(f"{url}/v2/models/whisper/ready", timeout=5)
            if (ready.status_code, not_ready.status_code) == (200, 503):
                break
            assert time.monotonic() < deadline, (ready.text, not_ready.text)
            time.sleep(0.05)
        page = httpx.get(f"{url}/status", timeout=5)
        assert page.status_code == 200
        assert "resnet" in page.text and "whisper" in page.text
        models = httpx.get(f"{url}/status/api/models", timeout=5).text
        assert "resnet" in models
        # History is on: the per-model figures come from the store (absent without one).
        view = httpx.get(f"{url}/status/api/models/resnet", timeout=5)
        assert view.status_code == 200
        assert set(view.json()["uptime"]) >= {"24h", "7d", "30d"}, view.text
        for text in (page.text, models, view.text, "\n".join(lines)):
            assert DEMO_TOKEN not in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
