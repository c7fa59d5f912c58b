"""The one walk over configs, and structuring through attrs' public API.

Rendering (``describe_spec``), the redactor's secrets, the dedupe plan's children
and the conformance suite's "can this class hold a secret" all follow
``healthkit._walk``; a plugin's converters and validators run as attrs defines
them (``attrs.Converter`` options, a real instance), with every issue reported.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from healthkit import (
    ConfigError,
    Resolver,
    Secret,
    SecretUrl,
    StrategyRegistrar,
    StrategyRegistry,
    StrategySpec,
    describe_spec,
    hookimpl,
    load_config,
    parse_spec,
)
from healthkit._redact import Redactor
from healthkit._walk import collect, walk
from healthkit.toolkit import FrozenMap
from healthkit.validators import gt


@attrs.frozen(kw_only=True)
class _Inner:
    token: Secret
    hidden: str = attrs.field(default="h", repr=False)


@attrs.frozen(kw_only=True)
class _Outer:
    inner: _Inner
    headers: FrozenMap[str, Secret] = attrs.field(factory=FrozenMap)
    urls: tuple[SecretUrl, ...] = ()
    count: int | None = None


@attrs.frozen
class _Node:
    child: _Node | None = None


def test_walk_rebuilds_records_tables_and_lists_as_plain_data() -> None:
    value = _Outer(
        inner=_Inner(token=Secret("tok-1234")),
        headers=FrozenMap({"a": Secret("hdr-5678")}),
        urls=(SecretUrl("http://u:p@h"),),
        count=3,
    )
    shown = walk(value, lambda leaf: type(leaf).__name__, shown_only=True)
    assert shown == {
        "inner": {"token": {"value": "str"}},
        "headers": {"a": {"value": "str"}},
        "urls": ["SecretUrl"],
        "count": "int",
    }
    # Without shown_only, fields hidden from reprs are walked too; stop makes a leaf.
    every = walk(value, repr, stop=lambda part: isinstance(part, Secret))
    assert every["inner"] == {"token": "Secret('***')", "hidden": "'h'"}


def test_collect_keeps_order_and_does_not_enter_what_it_collects() -> None:
    leaf_a = StrategySpec(strategy="noop", config=None)
    inner = StrategySpec(strategy="composite", config=FrozenMap({"checks": (leaf_a,)}))
    leaf_b = StrategySpec(strategy="noop", config=None, isolation="thread")
    found = collect(
        {"x": [inner, leaf_b], "y": leaf_a}, lambda part: isinstance(part, StrategySpec)
    )
    assert found == [inner, leaf_b, leaf_a]


def test_collect_walks_types_too_and_ends_on_recursive_classes() -> None:
    def secret_type(tp: Any) -> bool:
        return tp in (Secret, SecretUrl)

    assert collect(_Outer, secret_type) == [Secret, Secret, SecretUrl]
    assert collect(_Node, secret_type) == []
    assert collect(int | None, secret_type) == []


def test_redactor_and_describe_spec_reach_a_composite_childs_secrets() -> None:
    registry = StrategyRegistry()
    spec = parse_spec(
        {
            "strategy": "composite",
            "checks": [
                {
                    "strategy": "http",
                    "base_url": "http://user:pa55word@h:1",
                    "headers": {"Authorization": "Bearer child-token-1"},
                }
            ],
        },
        registry=registry,
    )
    redact = Redactor([spec])
    assert redact("pa55word Bearer child-token-1") == "*** ***"
    shown = repr(describe_spec(spec))
    assert "child-token-1" not in shown and "pa55word" not in shown
    assert describe_spec(spec)["checks"][0]["strategy"] == "http"


def test_resolver_plan_counts_composite_children_as_shared_instances() -> None:
    registry = StrategyRegistry()
    child = {"strategy": "http", "base_url": "http://h:1"}
    config = load_config(
        {
            "models": {
                "a": {"health_check": child},
                "b": {"health_check": {"strategy": "composite", "checks": [child, child]}},
            }
        },
        registry=registry,
    )
    plan = Resolver.plan((m.name, m.check) for m in config.models.values())
    assert [(p.id, p.spec.strategy, p.models, p.used_by, p.children) for p in plan] == [
        (1, "http", ("a",), (2,), ()),
        (2, "composite", ("b",), (), (1, 1)),
    ]


# -- converters and validators, as attrs runs them ----------------------------------------


def _with_field(name: str) -> int:
    return len(name)


@attrs.frozen(kw_only=True)
class _PluginConfig:
    # A converter that takes the field (attrs.Converter): attrs passes it, so must we.
    label: str = attrs.field(
        converter=attrs.Converter(lambda value, field: f"{field.name}={value}", takes_field=True)
    )
    size: int = attrs.field(default=1, validator=gt(0))
    kind: str = "a"
    limit: int = attrs.field(default=5, validator=gt(0))

    def __attrs_post_init__(self) -> None:
        if self.size > self.limit:
            raise ValueError(f"size: must be <= limit ({self.limit}), got {self.size}")


def _registry() -> StrategyRegistry:
    class Plugin:
        @hookimpl
        def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
            registrar.add("plug", config=_PluginConfig, factory=lambda c, ctx: None)  # type: ignore[arg-type,return-value]

    return StrategyRegistry(plugins=[Plugin()], entry_points=False)


def test_a_converter_taking_the_field_gets_it() -> None:
    spec = parse_spec({"strategy": "plug", "label": "x"}, registry=_registry())
    assert spec.config == _PluginConfig(label="x")
    assert spec.config.label == "label=x"


def test_field_issues_come_in_field_order_whichever_step_found_them() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_spec(
            {"strategy": "plug", "label": "x", "size": -1, "kind": 3, "limit": 0},
            registry=_registry(),
        )
    assert [str(i) for i in exc.value.issues] == [
        "size: must be > 0, got -1",
        "kind: expected a string, got 3",
        "limit: must be > 0, got 0",
    ]


def test_a_cross_field_problem_is_reported_at_its_key() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_spec({"strategy": "plug", "label": "x", "size": 9}, registry=_registry())
    assert [str(i) for i in exc.value.issues] == ["size: must be <= limit (5), got 9"]
