"""The conformance kit fails plugins with the containment faults, each with a message saying why.

Each broken strategy is run through the kit as a plugin author would: a
``StrategyConformance`` subclass in a test module, collected by a real pytest
run (a subprocess, so that a kit that hangs fails this test by its timeout
instead of stalling the run). ``tests/test_conformance_builtin.py`` covers the
older faults (leaks, secrets, raising checks).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

BASES = {"swallows_cancel": "Hangs", "lax": "Unvalidated", "keeps_lists": "Unvalidated"}

BROKEN = """
import asyncio
import time
from typing import Any

import attrs
import pytest

from healthkit import CheckResult, Status, StrategyRegistry, hookimpl
from healthkit.testing import BadConfig, StrategyConformance


@attrs.frozen(kw_only=True)
class Config:
    level: int = attrs.field(default=1, validator=attrs.validators.instance_of(int))


@attrs.frozen(kw_only=True)
class LaxConfig:
    level: Any = 1  # accepts anything at all


def _keep(value):
    return value


@attrs.frozen(kw_only=True)
class KeepsListsConfig:
    level: Any = attrs.field(default=1, converter=_keep)  # lists stay lists


@attrs.frozen(kw_only=True)
class TimedConfig:
    level: int = attrs.field(default=1, validator=attrs.validators.instance_of(int))
    timeout: float = 1.0
    hang: bool = False


class Good:
    def __init__(self, config, name):
        self.config = config
        self.name = name

    async def acheck(self, target):
        await asyncio.sleep(0)
        return CheckResult(status=Status.HEALTHY, strategy=self.name, target=target, detail="ok")

    async def aclose(self):
        return None


class RaisingClose(Good):
    async def aclose(self):
        raise RuntimeError("close kaboom")


class HangingClose(Good):
    async def aclose(self):
        await asyncio.Event().wait()


class Misnamed(Good):
    async def acheck(self, target):
        return CheckResult(status=Status.HEALTHY, strategy="something-else", target=target)


class Blocks(Good):
    async def acheck(self, target):
        time.sleep(0.6)
        return await super().acheck(target)


class SwallowsCancel(Good):
    async def acheck(self, target):
        if self.config.hang:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    await asyncio.sleep(min(self.config.timeout, deadline - time.monotonic()))
                    break
                except asyncio.CancelledError:
                    continue  # the fault: cancellation swallowed
            return CheckResult(
                status=Status.UNHEALTHY, strategy=self.name, target=target, detail="timed out"
            )
        return await super().acheck(target)


BEHAVIOURS = {
    "good": (Config, Good),
    "raising_close": (Config, RaisingClose),
    "hanging_close": (Config, HangingClose),
    "lax": (LaxConfig, Good),
    "keeps_lists": (KeepsListsConfig, Good),
    "misnamed": (Config, Misnamed),
    "blocks": (Config, Blocks),
    "swallows_cancel": (TimedConfig, SwallowsCancel),
}


class Plugin:
    __name__ = "broken-containment"

    @hookimpl
    def healthkit_register_strategies(self, registrar):
        for name, (config, cls) in BEHAVIOURS.items():
            registrar.add(name, config=config, factory=lambda c, ctx, cls=cls, n=name: cls(c, n))


class Common(StrategyConformance):
    deadline_slack = 0.5
    release_timeout = 0.5
    hang_limit = 2.0

    @pytest.fixture
    def registry(self):
        return StrategyRegistry(plugins=[Plugin()], entry_points=False, disabled=())

    @pytest.fixture
    def valid_config(self):
        return {"level": 1}

    @pytest.fixture
    def bad_configs(self):
        return [BadConfig(changes={"level": "x"}, path="level")]


class Hangs(Common):
    @pytest.fixture
    def unresponsive_config(self):
        return {"hang": True}


class Unvalidated(Common):
    # Their only fault is what they let through; the bad variant is an unknown key.
    @pytest.fixture
    def bad_configs(self):
        return [BadConfig(changes={"nope": 1}, path="nope", message="unknown key")]


""" + "".join(
    f"class Test_{name}({BASES.get(name, 'Common')}):\n    strategy = {name!r}\n\n\n"
    for name in (
        "good",
        "raising_close",
        "hanging_close",
        "lax",
        "keeps_lists",
        "misnamed",
        "blocks",
        "swallows_cancel",
    )
)

#: broken strategy -> {failing test: a phrase its failure message must contain}
EXPECTED = {
    "good": {},
    "raising_close": {
        "test_aclose_returns_promptly_without_raising": "aclose() raised RuntimeError: close kab",
    },
    "hanging_close": {
        "test_aclose_returns_promptly_without_raising": "aclose() did not return within 0.5s",
    },
    "lax": {"test_odd_values_give_config_errors_not_crashes": "level: accepts every value tried"},
    "keeps_lists": {
        "test_odd_values_give_config_errors_not_crashes": "the config is then unhashable",
    },
    "misnamed": {
        "test_check_always_returns_a_result": "result.strategy is 'something-else'",
    },
    "blocks": {"test_check_does_not_block_the_event_loop": "blocked the event loop for"},
    "swallows_cancel": {
        "test_check_obeys_cancellation": "it swallows CancelledError",
        # The abandoned checks are still running after close: a leaked task.
        "test_close_releases_every_resource": "still held after close",
    },
}


def test_the_kit_fails_each_containment_fault_saying_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "test_broken_containment.py").write_text(BROKEN)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,  # under pytest-timeout: the old kit hung on swallowed cancellation
        check=False,
    )
    failed: dict[str, dict[str, str]] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        strategy = case.get("classname", "").rsplit("Test_", 1)[-1]
        failed.setdefault(strategy, {})
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            failed[strategy][case.get("name", "")] = (problem.get("message") or "") + (
                problem.text or ""
            )
    assert {k: set(v) for k, v in failed.items()} == {k: set(v) for k, v in EXPECTED.items()}
    for strategy, tests in EXPECTED.items():
        for test, phrase in tests.items():
            assert phrase in failed[strategy][test], (strategy, test, failed[strategy][test])
