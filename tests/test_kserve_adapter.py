"""``healthkit.kserve.KServeHealth`` in process: KServe's real data plane and models,
a real loopback Open Inference Protocol server as the predictor.

The real-process tests (``test_kserve.py``) cover the wiring into ``ModelServer``;
these pin down the readiness rules that are awkward to steer from outside a
process: a model's own ``healthy()``, models KServe loads later, pickling for
KServe's worker processes, and closing.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import pickle
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from healthkit import StrategyRegistry, load_config
from healthkit.kserve import KServeHealth
from healthkit.testing import OipServer

pytestmark = pytest.mark.kserve

if importlib.util.find_spec("kserve") is None:  # pragma: no cover - the test extra installs it
    if sys.version_info >= (3, 14):
        pytest.skip("kserve does not support Python >= 3.14", allow_module_level=True)
    raise RuntimeError("tests/test_kserve_adapter.py needs kserve: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def kserve() -> Iterator[ModuleType]:
    # Importing kserve parses sys.argv; pytest's own arguments are none of its business.
    saved = sys.argv
    sys.argv = [saved[0]]
    try:
        module = importlib.import_module("kserve")
        importlib.import_module("kserve.protocol.dataplane")
        importlib.import_module("kserve.errors")
    finally:
        sys.argv = saved
    yield module


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    server = OipServer({"iris": "ready", "digits": "ready", "late": "ready"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Steered:
    """What a ``kserve.Model`` subclass in a transformer might do in ``healthy()``."""

    def __init__(self) -> None:
        self.ok = True
        self.boom = False
        self.calls = 0

    async def healthy(self) -> bool:
        self.calls += 1
        if self.boom:
            raise RuntimeError("healthy() exploded")
        return self.ok


def model(kserve: ModuleType, name: str) -> Any:
    steer = Steered()

    class Transformer(kserve.Model):  # type: ignore[misc, name-defined]
        async def healthy(self) -> bool:
            return await steer.healthy()

    m = Transformer(name)
    m.ready = True
    m.steer = steer
    return m


@pytest.fixture
async def plane(kserve: ModuleType, predictor: OipServer) -> AsyncIterator[KServeHealth]:
    registry = StrategyRegistry(entry_points=False, disabled=())
    config = load_config(
        {
            "defaults": {
                "health_check": {
                    "strategy": "http",
                    "base_url": predictor.url,
                    "protocol": "v2",
                    "timeout": 0.5,
                    "cache_ttl": 0.0,
                    "failure_threshold": 1,
                    "period": 60.0,
                }
            },
            "models": {"digits": {"health_check": {"strategy": "noop"}}},
        },
        registry=registry,
    )
    repository = kserve.model_repository.ModelRepository()
    for name in ("iris", "digits"):
        repository.update(model(kserve, name))
    inner = kserve.protocol.dataplane.DataPlane(model_registry=repository)
    health = KServeHealth(inner, config, registry=registry)
    try:
        yield health
    finally:
        await health.aclose()


async def settles(answer: Callable[[], Awaitable[bool]], want: bool, within: float = 5.0) -> None:
    """Poll a readiness answer until it is ``want``: answers come from memory and a
    change upstream shows once the background revalidation it started has landed."""
    deadline = time.monotonic() + within
    while (got := await answer()) is not want:
        assert time.monotonic() < deadline, f"still {got}"
        await asyncio.sleep(0.01)


def own(health: KServeHealth, name: str) -> Steered:
    steer: Steered = health.model_registry.get_model(name).steer
    return steer


async def test_both_the_model_and_its_predictor_must_be_ready(
    plane: KServeHealth, predictor: OipServer
) -> None:
    assert await plane.model_ready("iris") is True
    assert await plane.ready() is True

    own(plane, "iris").ok = False
    assert await plane.model_ready("iris") is False
    assert await plane.ready() is False
    own(plane, "iris").ok = True

    predictor.set_state("iris", "not_ready")
    await settles(lambda: plane.model_ready("iris"), False)
    assert await plane.ready() is False
    # digits is checked by noop: its predictor state does not matter.
    predictor.set_state("digits", "not_ready")
    await settles(lambda: plane.model_ready("digits"), True)
    assert await plane.model_ready("digits") is True
    predictor.set_state("iris", "ready")
    await settles(lambda: plane.model_ready("iris"), True)


async def test_a_healthy_that_raises_is_not_ready_never_an_error(plane: KServeHealth) -> None:
    own(plane, "iris").boom = True
    assert await plane.model_ready("iris") is False
    assert await plane.ready() is False


async def test_an_unknown_model_is_kserves_model_not_found(
    plane: KServeHealth, kserve: ModuleType
) -> None:
    with pytest.raises(kserve.errors.ModelNotFound):
        await plane.model_ready("nope")


async def test_inference_readiness_never_reaches_the_monitor(
    plane: KServeHealth, predictor: OipServer
) -> None:
    # KServe's predict/infer paths ask model_ready(name, True): only the model's own health.
    predictor.set_state("iris", "not_ready")
    before = predictor.total_requests
    for _ in range(20):
        assert await plane.model_ready("iris", True) is True
    assert predictor.total_requests == before
    assert plane.monitor is None  # not even started
    own(plane, "iris").ok = False
    assert await plane.model_ready("iris", True) is False


async def test_models_kserve_loads_later_are_checked_with_the_default(
    plane: KServeHealth, predictor: OipServer, kserve: ModuleType
) -> None:
    assert await plane.ready() is True
    assert plane.monitor is not None
    assert sorted(plane.monitor.models) == ["digits", "iris"]

    plane.model_registry.update(model(kserve, "late"))
    predictor.set_state("late", "not_ready")
    assert await plane.model_ready("late") is False
    assert sorted(plane.monitor.models) == ["digits", "iris", "late"]
    assert predictor.requests["/v2/models/late/ready"] >= 1
    predictor.set_state("late", "ready")
    await settles(lambda: plane.model_ready("late"), True)

    plane.model_registry.unload("late")
    assert await plane.ready() is True
    assert sorted(plane.monitor.models) == ["digits", "iris"]


async def test_it_pickles_without_its_monitor_for_kserve_workers(
    plane: KServeHealth, kserve: ModuleType
) -> None:
    # KServe's --workers N pickles the data plane into spawned processes (with its
    # models, whose classes live in the user's script: an empty repository here).
    inner = kserve.protocol.dataplane.DataPlane(
        model_registry=kserve.model_repository.ModelRepository()
    )
    original = KServeHealth(inner, plane.config)
    try:
        assert await original.ready() is True
        assert original.monitor is not None
        copy = pickle.loads(pickle.dumps(original))
    finally:
        await original.aclose()
    assert isinstance(copy, KServeHealth)
    assert copy.monitor is None
    assert copy.config == plane.config
    try:
        assert await copy.ready() is True  # starts a monitor of its own
        assert copy.monitor is not None
    finally:
        await copy.aclose()


async def test_after_close_nothing_is_ready_and_nothing_is_checked(
    plane: KServeHealth, predictor: OipServer
) -> None:
    assert await plane.ready() is True
    await plane.aclose()
    before = predictor.total_requests
    assert await plane.model_ready("iris") is False
    assert await plane.ready() is False
    assert plane.monitor is None
    assert predictor.total_requests == before
    await plane.aclose()  # idempotent
