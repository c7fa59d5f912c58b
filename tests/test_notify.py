"""Notifications against a real loopback webhook receiver, through real monitors and plugins."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.server
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from _monitor_support import http_config, wait_until
from healthkit import HealthKit, Monitor, StrategyRegistry, hookimpl, load_config
from healthkit.cli._plugins import plugins_data
from healthkit.notify import (
    Notification,
    NotificationEvent,
    Notifications,
    NotifierRegistrar,
)
from healthkit.testing import OipServer


class Receiver:
    """A webhook receiver on a free loopback port: records every POST; can fail or hang."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        self.hang = False
        self._release = threading.Event()
        self.changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver.changed:
                    receiver.posts.append({"body": body, "headers": dict(self.headers)})
                    receiver.changed.notify_all()
                if receiver.hang:
                    receiver._release.wait(10)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


def _notifications(entries: list[dict[str, Any]], registry: StrategyRegistry | None = None) -> Any:
    registry = registry or StrategyRegistry()
    config = load_config({"notifiers": entries}, registry=registry)
    return Notifications(config.notifiers, registry=registry)


def _event(model: str, old: str = "healthy", new: str = "unhealthy") -> NotificationEvent:
    kind = "recovered" if new == "healthy" else new
    return NotificationEvent(
        model=model, old=old, new=new, kind=kind, at=dt.datetime.now(dt.UTC), detail="HTTP 503"
    )


class _Fake:
    """Stands in for a monitor in ``attach``: only listeners are used."""

    def __init__(self) -> None:
        self.listeners: list[Any] = []

    def add_listener(self, fn: Any) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Any) -> None:
        self.listeners.remove(fn)


async def test_a_storm_of_real_transitions_is_one_message(receiver: Receiver) -> None:
    names = [f"model-{i}" for i in range(30)]
    with OipServer(dict.fromkeys(names, "ready")) as predictor:
        config = http_config(predictor.url, names, period=0.05, jitter=0.0)
        config["notifiers"] = [
            {"type": "webhook", "url": receiver.url, "storm_window": "1s", "storm_threshold": 5}
        ]
        kit = HealthKit.from_config(config)
        monitor = Monitor(kit)
        notifications = Notifications(kit.config.notifiers, registry=kit.registry)
        notifications.attach(monitor)
        try:
            await monitor.start()
            await wait_until(monitor.server_ready)
            for name in names:
                predictor.set_state(name, "not_ready")
            await wait_until(lambda: not any(monitor.is_ready(n) for n in names))
            await wait_until(lambda: len(receiver.posts) >= 1, timeout=5)
            await asyncio.sleep(1.2)  # a second window would have closed by now
        finally:
            await notifications.aclose()
            await monitor.aclose()
    (post,) = receiver.posts
    body = post["body"]
    assert body["storm"] is True and body["count"] == 30 and body["kind"] == "unhealthy"
    assert sorted(e["model"] for e in body["events"]) == sorted(names)
    assert body["summary"].startswith("30 models changed at once (30 unhealthy)")
    assert notifications.stats()[0].sent == 1


async def test_a_few_transitions_are_one_message_each(receiver: Receiver) -> None:
    notes = _notifications([{"type": "webhook", "url": receiver.url, "storm_window": "0.1s"}])
    fake = _Fake()
    notes.attach(fake)
    notes.publish(_event("a"))
    notes.publish(_event("b"))
    await wait_until(lambda: len(receiver.posts) == 2)
    await notes.aclose()
    assert sorted(p["body"]["events"][0]["model"] for p in receiver.posts) == ["a", "b"]
    assert all(p["body"]["storm"] is False for p in receiver.posts)


async def test_min_interval_folds_changes_and_always_tells_the_latest_state(
    receiver: Receiver,
) -> None:
    notes = _notifications(
        [{"type": "webhook", "url": receiver.url, "storm_window": 0, "min_interval": "0.5s"}]
    )
    notes.attach(_Fake())
    notes.publish(_event("a"))  # told at once
    notes.publish(_event("a", "unhealthy", "healthy"))  # held
    notes.publish(_event("a"))  # held: back to what was told
    notes.publish(_event("b"))  # another model: its own interval
    notes.publish(_event("b", "unhealthy", "healthy"))  # held, then told
    await wait_until(lambda: len(receiver.posts) == 3, timeout=5)
    await asyncio.sleep(0.7)  # "a" was released meanwhile: nothing new to tell
    await notes.aclose()
    told = [(p["body"]["events"][0]["model"], p["body"]["kind"]) for p in receiver.posts]
    assert told == [("a", "unhealthy"), ("b", "unhealthy"), ("b", "recovered")]
    assert notes.stats()[0].suppressed == 3


async def test_filters_by_event_and_model_glob(receiver: Receiver) -> None:
    notes = _notifications(
        [
            {
                "type": "webhook",
                "url": receiver.url,
                "storm_window": 0,
                "events": ["recovered"],
                "models": ["llm-*"],
            }
        ]
    )
    notes.attach(_Fake())
    notes.publish(_event("llm-a"))
    notes.publish(_event("other", "unhealthy", "healthy"))
    notes.publish(_event("llm-a", "unhealthy", "healthy"))
    await wait_until(lambda: len(receiver.posts) == 1)
    await notes.aclose()
    assert receiver.posts[0]["body"]["events"][0]["model"] == "llm-a"
    assert receiver.posts[0]["body"]["kind"] == "recovered"


async def test_slack_template_headers_and_url_credentials(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = receiver.url.replace("http://", "http://bot:hunter2-secret@")
    notes = _notifications(
        [
            {
                "type": "webhook",
                "url": url,
                "storm_window": 0,
                "headers": {"X-Token": "tok-secret-1"},
                "body": {"text": ":red_circle: $summary", "models": "$models", "all": "$events"},
            }
        ]
    )
    assert "hunter2" not in repr(notes._dispatchers[0].spec)
    assert "tok-secret-1" not in repr(notes._dispatchers[0].spec)
    notes.attach(_Fake())
    notes.publish(_event("a"))
    await wait_until(lambda: len(receiver.posts) == 1)
    await notes.aclose()
    post = receiver.posts[0]
    assert post["body"]["text"] == ":red_circle: model 'a' is unhealthy: HTTP 503"
    assert post["body"]["models"] == "a"
    assert post["body"]["all"][0]["model"] == "a"
    assert post["headers"]["X-Token"] == "tok-secret-1"
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(
        b"bot:hunter2-secret"
    ).decode("ascii")


async def test_a_dead_receiver_is_counted_logged_once_and_never_leaks_the_url(
    refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = refused_url.replace("http://", "http://u:pw-secret@") + "/services/T0/B0/tok-in-path"
    notes = _notifications(
        [{"type": "webhook", "url": url, "storm_window": 0, "retries": 1, "timeout": "1s"}]
    )
    notes.attach(_Fake())
    with caplog.at_level(logging.WARNING, logger="healthkit.notify"):
        for model in ("a", "b", "c"):
            notes.publish(_event(model))
        await wait_until(lambda: notes.stats()[0].failed == 3, timeout=10)
        await notes.aclose()
    lines = [r.getMessage() for r in caplog.records if "delivery failed" in r.getMessage()]
    assert len(lines) == 1  # once per interval, not once per message
    assert "ConnectError posting to 127.0.0.1" in lines[0]
    text = caplog.text
    assert "pw-secret" not in text and "tok-in-path" not in text


async def test_a_slow_receiver_times_out_and_probes_go_on(receiver: Receiver) -> None:
    receiver.hang = True
    with OipServer({"a": "ready"}) as predictor:
        config = http_config(predictor.url, ["a"], period=0.02, jitter=0.0)
        config["notifiers"] = [
            {
                "type": "webhook",
                "url": receiver.url,
                "storm_window": 0,
                "retries": 0,
                "timeout": "1s",
                "events": ["up"],
            }
        ]
        kit = HealthKit.from_config(config)
        monitor = Monitor(kit)
        checks: list[float] = []
        monitor.add_check_listener(lambda event: checks.append(event.seconds))
        notifications = Notifications(kit.config.notifiers, registry=kit.registry)
        notifications.attach(monitor)
        try:
            await monitor.start()
            await wait_until(lambda: len(receiver.posts) == 1)  # the receiver now hangs
            during = len(checks)
            await wait_until(lambda: notifications.stats()[0].failed == 1, timeout=5)
            # Probes kept running while the delivery hung until its timeout.
            assert len(checks) - during >= 5
            assert monitor.is_ready("a")
        finally:
            await notifications.aclose()
            await monitor.aclose()


async def test_log_notifier_writes_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    notes = _notifications([{"type": "log", "storm_window": 0, "level": "info"}])
    notes.attach(_Fake())
    with caplog.at_level(logging.INFO, logger="healthkit.notify"):
        notes.publish(_event("a"))
        await wait_until(lambda: notes.stats()[0].sent == 1)
        await notes.aclose()
    (record,) = [r for r in caplog.records if r.name == "healthkit.notify"]
    line = json.loads(record.getMessage())
    assert line["kind"] == "unhealthy" and line["events"][0]["model"] == "a"


# -- the hook: healthkit_register_notifiers ------------------------------------------------


@attrs.frozen(kw_only=True)
class MemoryConfig:
    label: str = "mem"


class MemoryNotifier:
    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.got: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.got.append(notification)

    async def aclose(self) -> None:
        pass


class MemoryPlugin:
    def __init__(self) -> None:
        self.made: list[MemoryNotifier] = []

    @hookimpl
    def healthkit_register_notifiers(self, registrar: NotifierRegistrar) -> None:
        registrar.add("memory", config=MemoryConfig, factory=self.make, description="In memory.")

    def make(self, config: MemoryConfig) -> MemoryNotifier:
        notifier = MemoryNotifier(config)
        self.made.append(notifier)
        return notifier


class BrokenNotifierPlugin:
    """Registers a strategy fine, and breaks in its notifier hook."""

    __name__ = "broken-notifiers"

    @hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        from healthkit.strategies.noop import NoopConfig, NoopStrategy

        registrar.add("still-here", config=NoopConfig, factory=NoopStrategy.create)

    @hookimpl
    def healthkit_register_notifiers(self, registrar: NotifierRegistrar) -> None:
        raise RuntimeError("notifier backend missing")


class FactoryFailsPlugin:
    __name__ = "factory-fails"

    @hookimpl
    def healthkit_register_notifiers(self, registrar: NotifierRegistrar) -> None:
        def factory(config: MemoryConfig) -> Any:
            raise RuntimeError("cannot build")

        registrar.add("fails", config=MemoryConfig, factory=factory)


async def test_a_plugin_notifier_through_the_hook_gets_real_transitions() -> None:
    plugin = MemoryPlugin()
    registry = StrategyRegistry(plugins=[plugin], entry_points=False)
    assert "memory" in registry.notifiers
    with OipServer({"a": "ready"}) as predictor:
        raw = http_config(predictor.url, ["a"], period=0.05, jitter=0.0)
        raw["notifiers"] = {"ops": {"type": "memory", "label": "x", "storm_window": 0}}
        kit = HealthKit(load_config(raw, registry=registry), registry=registry)
        monitor = Monitor(kit)
        notifications = Notifications(kit.config.notifiers, registry=registry)
        notifications.attach(monitor)
        try:
            await monitor.start()
            await wait_until(monitor.server_ready)
            predictor.set_state("a", "not_ready")
            (made,) = plugin.made
            await wait_until(lambda: len(made.got) == 1)
        finally:
            await notifications.aclose()
            await monitor.aclose()
    assert made.config.label == "x"
    assert made.got[0].notifier == "ops" and made.got[0].events[0].kind == "unhealthy"


async def test_a_broken_notifier_plugin_is_isolated_and_reported() -> None:
    plugin = MemoryPlugin()
    registry = StrategyRegistry(
        plugins=[BrokenNotifierPlugin(), FactoryFailsPlugin(), plugin], entry_points=False
    )
    (failure,) = registry.failures
    assert failure.name == "broken-notifiers" and failure.stage == "register"
    assert "notifier backend missing" in failure.message
    # Its strategies stay; other plugins' notifiers and the built-ins too.
    assert "still-here" in registry.strategies
    assert {"memory", "fails", "webhook", "log"} <= set(registry.notifiers)
    data = plugins_data(registry)
    assert any(f["plugin"] == "broken-notifiers" for f in data["failures"])
    assert {"name": "memory", "plugin": "MemoryPlugin#2"}.items() <= next(
        n for n in data["notifiers"] if n["name"] == "memory"
    ).items()
    # A notifier whose factory fails is left out; the others deliver.
    config = load_config(
        {"notifiers": [{"type": "fails"}, {"type": "memory", "storm_window": 0}]},
        registry=registry,
    )
    notes = Notifications(config.notifiers, registry=registry)
    assert len(notes) == 1
    notes.attach(_Fake())
    notes.publish(_event("a"))
    (made,) = plugin.made
    await wait_until(lambda: len(made.got) == 1)
    await notes.aclose()


def test_bad_notifier_entries_name_their_paths() -> None:
    from healthkit import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "notifiers": [
                    {"type": "webhok", "url": "http://x"},
                    {"type": "webhook", "url": "ftp://x", "min_interval": "soon", "extra": 1},
                ]
            },
            registry=StrategyRegistry(),
        )
    text = str(info.value)
    assert "notifiers[0].type: unknown notifier type 'webhok'; did you mean 'webhook'?" in text
    assert "notifiers[1].url: must be an http:// or https:// URL" in text
    assert "notifiers[1].min_interval: expected a duration" in text
    assert "notifiers[1].extra: unknown key" in text


async def test_failed_deliveries_are_counted_in_metrics(refused_url: str) -> None:
    from healthkit._metrics import MonitorMetrics
    from healthkit._operations import Operations

    config = {
        "models": {"a": {}},
        "notifiers": {
            "dead": {"type": "webhook", "url": refused_url, "storm_window": 0, "retries": 0}
        },
    }
    monitor = Monitor(HealthKit.from_config(config))
    operations = Operations(monitor)
    metrics = MonitorMetrics(monitor, operations)
    await operations.start()
    try:
        assert operations.notifications is not None
        operations.notifications.publish(_event("a"))
        await wait_until(lambda: operations.notifications.stats()[0].failed == 1)  # type: ignore[union-attr]
        text = metrics.render().decode()
    finally:
        await operations.aclose()
        await monitor.aclose()
    assert 'healthkit_notifications_failed_total{notifier="dead"} 1.0' in text
    assert 'healthkit_notifications_sent_total{notifier="dead"} 0.0' in text


async def test_five_hundred_transitions_in_one_window_are_one_message(receiver: Receiver) -> None:
    notes = _notifications([{"type": "webhook", "url": receiver.url, "storm_window": "0.3s"}])
    notes.attach(_Fake())
    for i in range(500):
        notes.publish(_event(f"model-{i}"))
    await wait_until(lambda: len(receiver.posts) == 1)
    await notes.aclose()
    (post,) = receiver.posts
    assert post["body"]["count"] == 500 and post["body"]["storm"] is True
    assert post["body"]["summary"].endswith("and 490 more")
    assert notes.stats()[0].sent == 1
