"""A KServe transformer with ``--workers 2`` sharing one ``healthkit serve`` sidecar.

Real processes: ``examples/kserve/predictor.py`` (it counts the readiness requests
that reach it, per model), ``healthkit serve`` as the sidecar (the only checker of
the predictor), and ``examples/kserve/transformer.py --workers 2`` whose workers
use ``strategy = "healthkit"`` against the sidecar (docs/kserve.md). Without the
sidecar each worker probes on its own: two checks per model per period.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_federation import Served
from test_kserve import SETTLE, Proc, Stack, free_ports, streak

pytestmark = pytest.mark.kserve

#: The sidecar's probe period (seconds): the predictor's per-model check rate.
PERIOD = 0.5


@pytest.fixture
def predictor(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    try:
        stack.start_predictor()
        stack.wait_predictor()
        yield stack
    finally:
        stack.stop()


def test_two_workers_cost_the_predictor_one_check_per_model_per_period(
    predictor: Stack, tmp_path: Path
) -> None:
    s = predictor
    sidecar = Served(
        {
            "defaults": {
                "health_check": {
                    "strategy": "http",
                    "base_url": f"http://127.0.0.1:{s.p_http}",
                    "protocol": "v2",
                    "timeout": 0.5,
                    "period": PERIOD,
                    "jitter": 0.0,
                    "failure_threshold": 1,
                }
            },
            "models": {"iris": {}},
        },
        tmp_path / "sidecar.json",
    )
    workers_config = tmp_path / "workers.json"
    workers_config.write_text(
        json.dumps(
            {
                "defaults": {
                    "health_check": {
                        "strategy": "healthkit",
                        "base_url": sidecar.url,
                        "max_age": 5 * PERIOD,
                        # Each worker reads often; only the sidecar reaches the predictor.
                        "period": 0.1,
                        "jitter": 0.0,
                        "cache_ttl": 0.1,
                        "failure_threshold": 1,
                    }
                },
                "models": {"iris": {}},
            }
        )
    )
    port, grpc_port = free_ports(2)
    args = ["--http_port", str(port), "--grpc_port", str(grpc_port), "--workers", "2"]
    args += ["--predictor_host", f"127.0.0.1:{s.p_http}", "--predictor_protocol", "v1"]
    args += ["--models", "iris", "--local_models", "", "--healthkit_config", str(workers_config)]
    proc: Proc | None = None
    url = f"http://127.0.0.1:{port}/v2/models/iris/ready"

    try:
        assert sidecar.url.startswith("http://"), "the sidecar did not start"
        proc = Proc("transformer.py", args, s.env, tmp_path / "workers.log")
        streak(s, proc, url, 200, 10)
        before = s.upstream()["rest"].get("iris", 0)
        start = time.monotonic()
        # Readiness asked ~50 times a second, on both workers, for 2 s+.
        streak(s, proc, url, 200, 100)
        window = time.monotonic() - start
        checks = s.upstream()["rest"].get("iris", 0) - before
        print(f"{checks} predictor checks of iris in {window:.2f} s (sidecar period {PERIOD} s)")
        # One per sidecar period, not one per worker per period (2 workers probing at
        # 0.1 s would be ~40 here).
        assert checks <= window / PERIOD + 2
        s.steer("iris", ready=False)
        streak(s, proc, url, 503, 20)
        s.steer("iris", ready=True)
        streak(s, proc, url, 200, 20)
    finally:
        code = proc.stop() if proc is not None else 0
        sidecar.stop()
    assert code == 0, proc.tail() if proc is not None else ""


def test_the_example_logs_healthkit_in_kserves_format_recoveries_included(
    predictor: Stack,
) -> None:
    """Regression: the example left the ``healthkit`` logger out of KServe's log config, so
    transitions printed as bare lines (no time, no logger) and recoveries (INFO) not at all."""
    s = predictor
    proc = s.start_transformer()
    s.wait_for("/v2/models/iris/ready", 200)
    s.steer("iris", ready=False)
    s.wait_for("/v2/models/iris/ready", 503)
    s.steer("iris", ready=True)
    s.wait_for("/v2/models/iris/ready", 200)
    deadline = time.monotonic() + SETTLE
    lines: list[str] = []
    while time.monotonic() < deadline:
        text = proc.log.read_text(encoding="utf-8", errors="replace")
        lines = [line for line in text.splitlines() if "model 'iris'" in line]
        if any("-> healthy" in line for line in lines[1:]):
            break
        time.sleep(0.05)
    down = [line for line in lines if "healthy -> unhealthy" in line]
    up = [line for line in lines if "unhealthy -> healthy" in line]
    assert down and up, "\n".join(lines) or proc.tail()
    for line in (down[0], up[0]):
        # KServe's format: date, time, pid, logger, level, [function():line], message.
        assert line[:4].isdigit() and " healthkit.monitor " in line, line
    assert " INFO " in up[0] and " WARNING " in down[0]
