"""Loading a big config file leaves in memory what its models need, and loads as before.

A file's model tables are packed into one buffer and the parsed document is
dropped before any model is built (``_load._packed``): models built among the
parser's leftovers would keep all of its memory resident (about 2 KiB of RSS a
model for 150 bytes of live objects). RSS itself is not asserted (allocator
noise; ``benchmarks/run.py scale`` prints it); these tests check that the
document is gone when the models are built, that nothing of it waits for the
garbage collector, what a model holds, and that a file loads exactly as the same
document given as a mapping (which is not packed) does: configs, notices,
secrets, and every issue in order.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from healthkit import ConfigError, ServerConfig, StrategyRegistry, load_config
from healthkit._configuration import _load, _source
from healthkit._configuration._source import check_shape

MODELS = 2000


#: In every model table of ``_big_toml``, to tell its tables from any other dict.
MARK = 0.0078125


def _big_toml(models: int) -> str:
    head = '[defaults.health_check]\nstrategy = "noop"\nperiod = 60\n'
    return head + "".join(
        f"[models.m{i}.health_check]\ntimeout = {1 + i % 10}\ncache_ttl = {MARK}\n"
        for i in range(models)
    )


def _is_model_table(value: object) -> bool:
    """A model's table as parsed from ``_big_toml``."""
    if type(value) is not dict or set(value) != {"health_check"}:
        return False
    table = value["health_check"]
    return isinstance(table, dict) and table.get("cache_ttl") == MARK


@pytest.fixture
def gc_off() -> Iterator[None]:
    """No automatic collection: what only the collector frees stays until we look."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_the_document_is_gone_before_the_models_are_built(
    tmp_path: Path, registry: StrategyRegistry, monkeypatch: pytest.MonkeyPatch, gc_off: None
) -> None:
    path = tmp_path / "big.toml"
    path.write_text(_big_toml(MODELS))
    tables_alive: list[int] = []
    real = _load.ModelConfig

    def counting(**kwargs: Any) -> Any:
        if not tables_alive:  # the first model: the document must already be freed
            tables_alive.append(sum(1 for o in gc.get_objects() if _is_model_table(o)))
        return real(**kwargs)

    monkeypatch.setattr(_load, "ModelConfig", counting)
    gc.collect()
    config = load_config(path, registry=registry)
    assert len(config.models) == MODELS
    # At most the one table being turned into a model (before: every model's table).
    assert tables_alive[0] <= 1


def test_checking_a_document_leaves_no_garbage_for_the_collector(gc_off: None) -> None:
    # Garbage that waits for the collector is scattered over the parser's memory
    # and keeps it resident; check_shape's recursive walk was such a cycle.
    document = tomllib.loads(_big_toml(200))
    gc.collect()  # only what check_shape leaves is counted below
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert check_shape(document) is None
        assert gc.collect() == 0
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_checking_a_document_leaves_nothing_in_free_lists() -> None:
    # CPython keeps up to 2,000 freed tuples of each size for reuse; tuples that
    # check_shape made by the thousand would stay there, scattered over the
    # parser's memory, and keep it resident. tracemalloc counts them as alive.
    document = tomllib.loads(_big_toml(1000))
    gc.collect()  # a full collection empties the free lists
    tracemalloc.start()
    try:
        assert check_shape(document) is None
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    mine = snapshot.filter_traces([tracemalloc.Filter(True, _source.__file__)])
    left = sum(stat.size for stat in mine.statistics("filename"))
    assert left < 4096, f"{left} bytes still held"


def test_a_loaded_model_holds_little_live_memory(
    tmp_path: Path, registry: StrategyRegistry
) -> None:
    """Live bytes per model of a loaded config: a name, a ModelConfig, a map entry
    (about 155 bytes; specs and settings are shared by equal models)."""
    path = tmp_path / "big.toml"
    path.write_text(_big_toml(MODELS))
    load_config(path, registry=registry)  # plans and imports once, not counted
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        config = load_config(path, registry=registry)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(config.models) == MODELS
    assert held / MODELS < 300, f"{held / MODELS:.0f} bytes a model"


# -- a file loads as its document does ------------------------------------------------------

VARIED_TOML = """\
[defaults.health_check]
strategy = "http"
base_url = "http://127.0.0.1:8080"
protocol = "v2"
timeout = 1.5
period = 7
headers = { Authorization = "Bearer ${HK_MEM_TOKEN}" }

[models.alpha]

[models.beta]
version = 3
upstream_model = "{model}-v3"

[models.gamma.health_check]
strategy = "composite"
mode = "quorum"
quorum = 2
checks = [ {strategy = "http", base_url = "http://10.0.0.1:8080", protocol = "v1"},
           {strategy = "http", base_url = "http://10.0.0.2:8080", protocol = "v2"},
           {strategy = "noop"} ]

[models.delta.health_check]
base_url = "http://other-host:9000"
unhealthy_period = 2.5

[models.epsilon.health_check]
base_url = "http://other-host:9000"
inherit_secrets = true
jitter = 0.0

[models.zeta.health_check]
strategy = "noop"
success_threshold = 2

[models."eta.with-dots"]
version = "v1"

[[notifiers]]
type = "log"
"""

ERRORS_TOML = """\
[defaults.health_check]
strategy = "http"
base_url = "http://127.0.0.1:8080"
protocol = "v9"

[models.ok.health_check]
strategy = "noop"

[models.dated]
version = 2024-01-02

[models.when.health_check]
strategy = "noop"
period = 1979-05-27T07:32:00Z

[models.bad.health_check]
strategy = "htp"

[models.worse.health_check]
strategy = "noop"
period = -1
unknown_key = 1

[models."bad name!"]

[models.env.health_check]
base_url = "${HK_MEM_UNSET}"

[models.clash]
upstream_model = "ok"
"""

ERRORS_YAML = """\
models:
  7:
    version: 1
  a:
    health_check: [1, 2]
  b:
    health_check:
      strategy: noop
      period: !!binary aGVsbG8=
  c:
    version: 2024-01-02
  d: null
  e:
    health_check: {strategy: noop, timeout: .inf}
shared: &s {strategy: noop}
"""

# Values a round trip could bend: a lone surrogate, a huge integer, -0.0, lists in lists.
ODD_JSON = r"""{
  "models": {
    "a": {"health_check": {"strategy": "noop", "timeout": "\ud800x"}},
    "b": {"health_check": {"strategy": "noop", "period": 123456789012345678901234567890}},
    "c": {"health_check": {"strategy": "noop", "jitter": -0.0, "x": [[1, [2.5]], {}]}},
    "d": null,
    "e": 5,
    "f": {"health_check": {"strategy": "noop", "cache_ttl": 1e400}}
  }
}"""

CLASH_TOML = """\
[models.one.health_check]
strategy = "noop"

[models.two]
upstream_model = "one"
health_check = { strategy = "noop" }
"""


def _outcome(source: Any, registry: StrategyRegistry) -> Any:
    try:
        config = load_config(source, registry=registry)
    except ConfigError as exc:
        return [(issue.path, issue.message) for issue in exc.issues]
    assert isinstance(config, ServerConfig)
    return config, list(config.models), config.notices, config.secrets


@pytest.mark.parametrize(
    ("name", "text", "parse"),
    [
        ("varied.toml", VARIED_TOML, tomllib.loads),
        ("errors.toml", ERRORS_TOML, tomllib.loads),
        ("clash.toml", CLASH_TOML, tomllib.loads),
        ("big.toml", _big_toml(300), tomllib.loads),
        ("errors.yaml", ERRORS_YAML, yaml.safe_load),
        ("odd.json", ODD_JSON, json.loads),
        ("empty.yaml", "models:\n", yaml.safe_load),
        (
            "varied.json",
            json.dumps(tomllib.loads(VARIED_TOML)),
            json.loads,
        ),
    ],
)
def test_a_file_loads_exactly_as_its_document_given_as_a_mapping(
    tmp_path: Path,
    registry: StrategyRegistry,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    text: str,
    parse: Any,
) -> None:
    monkeypatch.setenv("HK_MEM_TOKEN", "s3cret-token")
    monkeypatch.delenv("HK_MEM_UNSET", raising=False)
    path = tmp_path / name
    path.write_text(text)
    from_file = _outcome(path, registry)
    from_mapping = _outcome(parse(text), registry)
    assert from_file == from_mapping
    if name.startswith(("errors", "clash", "odd")):
        assert isinstance(from_file, list) and from_file  # the issues were compared
    else:
        assert isinstance(from_file, tuple)


def test_a_value_marshal_cannot_pack_keeps_its_table(
    tmp_path: Path, registry: StrategyRegistry
) -> None:
    # A TOML date is no marshal type: that model's table is kept as it was parsed,
    # and its issue still comes in the order of the models.
    path = tmp_path / "dates.toml"
    path.write_text(
        "[models.a]\nversion = true\n[models.b]\nversion = 2024-01-02\n[models.c]\nversion = [1]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry=registry)
    assert [i.path for i in caught.value.issues] == [
        "models.a.version",
        "models.b.version",
        "models.c.version",
    ]
    assert "datetime.date(2024, 1, 2)" in caught.value.issues[1].message
