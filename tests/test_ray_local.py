"""healthkit.ray without a cluster: lazy import, config checks, the shared monitor's snapshot."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from healthkit import ConfigError, Status
from healthkit.testing import OipServer


def _config(url: str) -> dict[str, Any]:
    return {
        "defaults": {
            "health_check": {
                "strategy": "http",
                "base_url": url,
                "protocol": "v2",
                "period": 60.0,
                "jitter": 0.0,
            }
        },
        "models": {"alpha": {}, "beta": {}},
    }


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_healthkit_ray_does_not_import_ray() -> None:
    done = _run(
        """
        import sys
        import healthkit, healthkit.ray
        print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_ray_names_the_extra() -> None:
    done = _run(
        """
        import sys
        sys.modules["ray"] = None  # what an environment without Ray looks like to import
        import healthkit.ray
        try:
            healthkit.ray.ReplicaHealth({"models": {"alpha": {}}})
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'model-healthkit[ray]'" in done.stdout


def test_bad_config_fails_in_the_replica() -> None:
    import healthkit.ray

    with pytest.raises(ConfigError, match=r"models\.alpha\.health_check\.timeuot"):
        healthkit.ray.ReplicaHealth({"models": {"alpha": {"health_check": {"timeuot": 1}}}})
    with pytest.raises(ValueError, match="refresh"):
        healthkit.ray.ReplicaHealth({"models": {}}, refresh=0)
    with pytest.raises(ValueError, match="name"):
        healthkit.ray.ReplicaHealth({"models": {}}, name="")


def test_unstarted_replica_reads_unknown_and_is_live() -> None:
    import healthkit.ray

    health = healthkit.ray.ReplicaHealth({"models": {"alpha": {}}})
    assert health.status("alpha") is Status.UNKNOWN
    assert not health.is_ready("alpha")
    assert not health.server_ready()
    assert health.epoch is None
    health.check_health()  # nothing of the replica's own is broken
    with pytest.raises(KeyError):
        health.status("nope")
    with pytest.raises(KeyError):
        health.is_ready("nope")


async def test_shared_monitor_snapshot_answers_from_memory(
    healthkit_oip_server: OipServer,
) -> None:
    from healthkit import StrategyRegistry, load_config
    from healthkit.ray import SharedMonitor

    config = load_config(_config(healthkit_oip_server.url), registry=StrategyRegistry())
    shared = SharedMonitor(config)
    try:
        first = await shared.snapshot()
        assert first["epoch"] == shared.epoch
        assert set(first["models"]) == {"alpha", "beta"}

        async def settled() -> dict[str, Any]:
            while True:
                snap = await shared.snapshot()
                if all(m["status"] != "unknown" for m in snap["models"].values()):
                    return snap
                await asyncio.sleep(0.01)

        snap = await asyncio.wait_for(settled(), 10)
        assert snap["models"] == {
            "alpha": {"status": "healthy", "ready": True},
            "beta": {"status": "unhealthy", "ready": False},
        }
        probes = healthkit_oip_server.total_requests
        for _ in range(100):
            await shared.snapshot()
        # A snapshot never checks upstream: the next probe is a period (60 s) away.
        assert healthkit_oip_server.total_requests == probes
    finally:
        await shared.aclose()
