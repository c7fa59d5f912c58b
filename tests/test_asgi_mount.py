"""docs/asgi.md's "mounted in a host app" example, run for real under uvicorn.

The snippet is taken from the page as it is, written next to a config that
points at a real ``OipServer``, and served by a ``python -m uvicorn`` subprocess
on a free loopback port (``--port 0``; the port is read from uvicorn's log). The
routes sit under the prefix, the prefix alone is a 307, SIGTERM runs the host's
lifespan shutdown and the process ends by the signal, as the page says.
"""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from healthkit.testing import OipServer

DOC = Path(__file__).resolve().parent.parent / "docs" / "asgi.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def mount_example() -> str:
    blocks = [b for b in FENCE.findall(DOC.read_text(encoding="utf-8")) if "Mount(" in b]
    assert len(blocks) == 1, "docs/asgi.md: expected one python example with Mount("
    return str(blocks[0])


def root_variant() -> str:
    """The page's one-liner for serving the routes at the host's root."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"`(Starlette\(routes=\[[^`]*\*create_router\(monitor\)\.routes[^`]*)`", text)
    assert found, "docs/asgi.md: the root variant is gone"
    return found.group(1)


class Uvicorn:
    """``python -m uvicorn MODULE:APP --port 0`` in ``cwd``; the log is kept, line by line."""

    def __init__(self, cwd: Path, app: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        try:
            line = self.wait_for(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
        except BaseException:
            self.stop()
            raise
        found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert found
        self.url = found.group(1)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        assert self.proc.stderr is not None
        end = time.monotonic() + timeout
        while True:
            for line in self.log:
                if re.search(pattern, line):
                    return line
            left = end - time.monotonic()
            assert left > 0, f"no log line matching {pattern!r}: {self.log}"
            ready, _, _ = select.select([self.proc.stderr], [], [], left)
            if ready:
                line = self.proc.stderr.readline()
                assert line, f"uvicorn exited ({self.proc.poll()}): {self.log}"
                self.log.append(line.rstrip("\n"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def upstream() -> Iterator[OipServer]:
    srv = OipServer({"alpha": "ready", "beta": "not_ready"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def project(tmp_path: Path, upstream: OipServer) -> Path:
    (tmp_path / "healthkit.toml").write_text(
        "[defaults.health_check]\n"
        'strategy = "http"\n'
        f'base_url = "{upstream.url}"\n'
        "timeout = 1.0\n"
        "[models.alpha]\n"
        "[models.beta]\n",
        encoding="utf-8",
    )
    return tmp_path


def poll(client: httpx.Client, url: str, want: int, timeout: float = 20.0) -> httpx.Response:
    """GET ``url`` until it answers ``want`` (the monitor's first probes take a moment)."""
    end = time.monotonic() + timeout
    while True:
        response = client.get(url)
        if response.status_code == want or time.monotonic() > end:
            return response
        time.sleep(0.05)


def test_the_mount_example_serves_under_its_prefix_and_stops_on_sigterm(project: Path) -> None:
    (project / "host_app.py").write_text(mount_example(), encoding="utf-8")
    server = Uvicorn(project, "host_app:host")
    try:
        with httpx.Client(base_url=server.url, timeout=5.0, follow_redirects=False) as client:
            alpha = poll(client, "/ops/v2/models/alpha/ready", 200)
            assert alpha.status_code == 200
            assert alpha.json() == {"name": "alpha", "ready": True}
            assert client.get("/ops/v2/models/beta/ready").status_code == 503
            assert client.get("/ops/livez").json() == {"live": True}
            assert client.get("/ops/readyz").status_code == 503  # beta is not ready
            health = client.get("/ops/health")
            assert health.status_code == 503
            assert health.json()["ready"] is False
            assert "healthkit_model_ready" in client.get("/ops/metrics").text
            assert client.get("/predict").text == "the host's own route"
            # The prefix alone is not a route: a redirect, then a 404.
            bare = client.get("/ops")
            assert bare.status_code == 307
            assert bare.headers["location"].endswith("/ops/")
            assert client.get("/ops/").status_code == 404
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == -signal.SIGTERM
        # The host's lifespan shutdown ran (monitor and clients closed) before the end.
        server.wait_for(r"Application shutdown complete", timeout=5)
    finally:
        server.stop()


def test_the_root_variant_serves_the_routes_at_the_root(project: Path) -> None:
    example = mount_example()
    start = example.index("host = Starlette(")
    module = example[:start] + f"host = {root_variant()}\n"
    (project / "root_app.py").write_text(module, encoding="utf-8")
    server = Uvicorn(project, "root_app:host")
    try:
        with httpx.Client(base_url=server.url, timeout=5.0, follow_redirects=False) as client:
            assert poll(client, "/v2/models/alpha/ready", 200).status_code == 200
            assert client.get("/livez").json() == {"live": True}
            assert client.get("/health").status_code == 503
            assert client.get("/predict").status_code == 200
    finally:
        server.stop()
