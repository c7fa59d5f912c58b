"""The ``status`` benchmark section: what the status page costs, and how fast it paints.

1. Readiness p99 of ``healthkit serve`` with a history store, the status page and 20
   Server-Sent Events clients reading it, against the same config without history and
   with ``--no-status-page`` (and, to attribute the cost, with history only). A few
   models flap at the predictor (so the streams and the store have transitions to carry)
   while readiness requests over keep-alive connections are timed; the servers are
   measured in turn, several rounds each, and the p99 of each side is compared (target:
   within 1.2x).
2. The page at 10,000 models in headless Chromium (Debian's ``chromium`` through
   Selenium): first contentful paint, and the time until every model is loaded and the
   rows in view are drawn (target: first paint under 1 s). Skipped, and said so, when
   the browser or Selenium is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

_PREDICTOR = """
import sys, threading
from healthkit.testing import OipServer
models = {f"model-{i}": "ready" for i in range(int(sys.argv[1]))}
models.update({f"flap-{i}": "flaky" for i in range(int(sys.argv[2]))})
server = OipServer(models).start()
print(server.url, flush=True)
threading.Event().wait()
"""


@contextlib.contextmanager
def _process(args: list[str]) -> Iterator[str]:
    """A child printing its URL as its last word on its first line; yields the URL."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"{args[2:4]} did not start")
        yield line.rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _serve(path: Path, *flags: str) -> contextlib.AbstractContextManager[str]:
    main = "from healthkit.cli import main; main()"
    args = [sys.executable, "-c", main, "serve", str(path), "--port", "0", *flags]
    return _process([*args, "--log-level", "error"])


def _config(tmp: Path, url: str, models: int, flapping: int, *, history: bool, name: str) -> Path:
    lines = [
        "[defaults.health_check]",
        'strategy = "http"',
        f'base_url = "{url}"',
        "period = 5.0",
        "timeout = 2.0",
        "failure_threshold = 1",
        "",
    ]
    lines += [f'[models."model-{i}"]' for i in range(models)]
    # The flapping models change status at every probe: a transition per second each.
    for i in range(flapping):
        lines += [f'[models."flap-{i}".health_check]', "period = 1.0"]
    if history:
        lines += ["", "[history]", f'path = "{tmp / name}.sqlite"']
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def _readers(url: str, clients: int, stop: asyncio.Event) -> list[int]:
    """``clients`` event-stream readers until ``stop``: bytes each one read."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    counts = [0] * clients

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(f"GET /status/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    chunk = await asyncio.wait_for(reader.read(65536), 0.2)
                    if not chunk:
                        return
                    counts[index] += len(chunk)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    await asyncio.gather(*(one(i) for i in range(clients)))
    return counts


async def _keepalive(
    url: str, paths: list[str], connections: int
) -> tuple[list[float], dict[int, int]]:
    """GET every path over ``connections`` keep-alive connections: latencies, status counts.

    Keep-alive, as a kubelet or load balancer probes: the latency is the server's
    answer time, not the kernel's accept queue under a connection storm.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    queue = list(reversed(paths))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                path = queue.pop()
                start = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                status = int(head.split(b" ", 2)[1])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, statuses


def run_status(
    quick: bool,
    *,
    pct: Callable[[list[float], float], float],
    ms: Callable[[float], str],
    table: Callable[..., None],
) -> dict[str, Any]:
    models, flapping, clients = (300 if quick else 1000), 20, 20
    rounds, per_burst = (4 if quick else 8), 500
    result: dict[str, Any] = {"models": models, "flapping": flapping, "sse_clients": clients}
    sides = ("without", "history", "with")
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    statuses: dict[str, dict[int, int]] = {side: {} for side in sides}
    streamed = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        predictor = [sys.executable, "-c", _PREDICTOR, str(models), str(flapping)]
        with _process(predictor) as upstream:
            plain = _config(tmp, upstream, models, flapping, history=False, name="without")
            stored = _config(tmp, upstream, models, flapping, history=True, name="history")
            full = _config(tmp, upstream, models, flapping, history=True, name="with")
            with (
                _serve(plain, "--no-status-page") as url_without,
                _serve(stored, "--no-status-page") as url_history,
                _serve(full) as url_with,
            ):

                async def measure() -> int:
                    stop = asyncio.Event()
                    readers = asyncio.ensure_future(_readers(url_with, clients, stop))
                    await asyncio.sleep(2.0)  # both servers probed everything once
                    paths = [f"/v2/models/model-{i % models}/ready" for i in range(per_burst)]
                    for _ in range(rounds):
                        for side, url in zip(
                            sides, (url_without, url_history, url_with), strict=True
                        ):
                            lat, codes = await _keepalive(url, paths, 10)
                            latencies[side].extend(lat)
                            for code, n in codes.items():
                                statuses[side][code] = statuses[side].get(code, 0) + n
                            await asyncio.sleep(0.2)
                    stop.set()
                    return sum(await readers)

                streamed = asyncio.run(measure())
    p99 = {side: pct(sorted(v), 0.99) for side, v in latencies.items()}
    p50 = {side: pct(sorted(v), 0.5) for side, v in latencies.items()}
    result.update(
        p99_without=p99["without"],
        p99_with=p99["with"],
        p99_history=p99["history"],
        ratio=p99["with"] / p99["without"] if p99["without"] else float("inf"),
        statuses=statuses,
        streamed_bytes=streamed,
    )
    table(
        f"status: readiness with history + status page + {clients} SSE clients"
        f" ({models} models, {flapping} flapping; {rounds} rounds of {per_burst} requests"
        " over 10 keep-alive connections per server)",
        ["server", "p50", "p99", "answers"],
        [
            [
                "without (no history, --no-status-page)",
                ms(p50["without"]),
                ms(p99["without"]),
                statuses["without"],
            ],
            [
                "history only (--no-status-page)",
                ms(p50["history"]),
                ms(p99["history"]),
                statuses["history"],
            ],
            [
                f"with (history, page, {clients} streams: {streamed:,} B read)",
                ms(p50["with"]),
                ms(p99["with"]),
                statuses["with"],
            ],
        ],
    )
    result["paint"] = _paint(quick, table=table, ms=ms)
    return result


def _paint(quick: bool, *, table: Callable[..., None], ms: Callable[[float], str]) -> Any:
    """First paint and rows-loaded of /status at 10,000 models in headless Chromium."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("status: first paint not measured: selenium is not installed")
        return None
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        print("status: first paint not measured: apt-get install chromium chromium-driver")
        return None
    models = 10_000
    config = {
        "defaults": {"health_check": {"strategy": "noop", "period": 60.0}},
        "models": {f"model-{i:05d}": {} for i in range(models)},
    }
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        path = Path(tmp_name) / "healthkit.json"
        path.write_text(json.dumps(config))
        with _serve(path) as url:
            driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
            try:
                driver.get(url + "/status")  # warm-up: the server's first probes, caches
                time.sleep(2.0)
                for _ in range(2 if quick else 5):
                    driver.get("about:blank")
                    driver.get(url + "/status")
                    deadline = time.monotonic() + 30
                    while not driver.execute_script("return document.body.dataset.loaded"):
                        if time.monotonic() > deadline:
                            raise RuntimeError("the page did not load 10,000 models in 30 s")
                        time.sleep(0.02)
                    figures = driver.execute_script(
                        "var p = performance.getEntriesByName('first-contentful-paint')[0];"
                        "var r = performance.getEntriesByName('healthkit-rows')[0];"
                        "var n = performance.getEntriesByType('navigation')[0];"
                        "return {fcp: p ? p.startTime : null, rows: r ? r.startTime : null,"
                        " html: n ? n.responseEnd : null,"
                        " drawn: document.querySelectorAll('#rows .row').length};"
                    )
                    runs.append(figures)
            finally:
                driver.quit()
    fcp = statistics.median(r["fcp"] for r in runs) / 1000.0
    rows = statistics.median(r["rows"] for r in runs) / 1000.0
    worst = max(r["fcp"] for r in runs) / 1000.0
    table(
        f"status: /status at {models:,} models in headless Chromium ({len(runs)} loads)",
        ["figure", "median", "worst"],
        [
            ["first contentful paint", ms(fcp), ms(worst)],
            [
                f"all {models:,} loaded, rows in view drawn",
                ms(rows),
                ms(max(r["rows"] for r in runs) / 1000.0),
            ],
            ["rows in the DOM", f"{int(runs[-1]['drawn'])}", ""],
        ],
    )
    return {"models": models, "fcp": fcp, "fcp_worst": worst, "rows": rows}
