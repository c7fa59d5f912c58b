"""Fuzzing config *text*: any file loads, or fails with a ``ConfigError`` that says where.

TOML, YAML and JSON text from config-like documents, then mangled: random bytes
(invalid UTF-8 included), YAML anchors and aliases (cycles and bombs), deep nesting.
Nothing else may escape (no ``RecursionError``, ``UnicodeDecodeError``, ``TypeError``),
and each example finishes within hypothesis' ``deadline``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from healthkit import ConfigError, ServerConfig, StrategyRegistry, load_config

pytest.importorskip("yaml")

SETTINGS = settings(
    max_examples=150,
    deadline=2000,  # ms per example: an alias bomb or a deep document must fail fast
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = [
    "defaults", "models", "health_check", "strategy", "base_url", "protocol", "timeout",
    "checks", "mode", "quorum", "headers", "retries", "target", "version", "period",
    "inherit_secrets", "isolation", "path", "method", "expected_status", "tls", "argv",
]  # fmt: skip
STRATEGIES = ["noop", "http", "grpc", "composite", "tcp", "exec", "openai", "nop", ""]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.sampled_from([*STRATEGIES, "http://h:1", "h:1", "v1", "${HOME}", "${NOPE}", "$$", "2xx"]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=25,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Config-shaped documents, often nearly valid."""
    models = draw(
        st.dictionaries(
            st.one_of(
                st.sampled_from(["a", "b", ".", "..", "", "\x00", "x/y"]), st.text(max_size=8)
            ),
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {
                        "health_check": st.one_of(
                            values,
                            st.fixed_dictionaries(
                                {"strategy": st.sampled_from(STRATEGIES)},
                                optional={k: values for k in KEYS[4:]},
                            ),
                        )
                    },
                    optional={"version": values},
                ),
                values,
            ),
            max_size=4,
        )
    )
    doc: dict[str, Any] = {"models": models}
    if draw(st.booleans()):
        doc["defaults"] = {"health_check": draw(values)}
    if draw(st.booleans()):
        doc[draw(st.sampled_from(KEYS))] = draw(values)
    return doc


def _toml(value: Any) -> str:
    try:
        import tomli_w  # type: ignore[import-not-found,unused-ignore]

        return str(tomli_w.dumps(value))
    except Exception:
        # no writer (or a value TOML cannot hold): inline tables via JSON-ish syntax
        return "models = " + json.dumps(value.get("models", {}), default=str).replace(":", " =")


def _yaml(value: Any) -> str:
    import yaml

    return str(yaml.safe_dump(value, allow_unicode=True))


YAML_TRICKS = [
    "a: &a [*a]\nmodels: {}\n",
    "defaults: &d {health_check: *d}\n",
    "x: &x [1,1,1,1,1,1,1,1,1,1]\ny: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x,*x]\n"
    "z: &z [*y,*y,*y,*y,*y,*y,*y,*y,*y,*y]\nw: &w [*z,*z,*z,*z,*z,*z,*z,*z,*z,*z]\n"
    "v: &v [*w,*w,*w,*w,*w,*w,*w,*w,*w,*w]\nu: &u [*v,*v,*v,*v,*v,*v,*v,*v,*v,*v]\n"
    "t: &t [*u,*u,*u,*u,*u,*u,*u,*u,*u,*u]\nmodels: {m: {health_check: {strategy: noop, k: *t}}}\n",
    "models:\n  m: &m\n    health_check: {strategy: composite, checks: [*m]}\n",
    "hc: &hc {strategy: noop}\nmodels: {a: {health_check: *hc}, b: {health_check: *hc}}\n",
]


@st.composite
def texts(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".toml", ".json", ".yaml"]))
    kind = draw(st.sampled_from(["doc", "deep", "trick", "bytes"]))
    if kind == "deep":
        depth = draw(st.integers(50, 3000))
        inner = {"strategy": "noop"}
        if draw(st.booleans()):
            text = '{"models": {"m": {"health_check": {"k": ' + "[" * depth + "]" * depth + "}}}}"
        else:
            spec: Any = inner
            for _ in range(min(depth, 400)):
                spec = {"strategy": "composite", "checks": [spec]}
            text = json.dumps({"models": {"m": {"health_check": spec}}})
        if suffix == ".toml":
            suffix = ".json"
    elif kind == "trick":
        text = draw(st.sampled_from(YAML_TRICKS))
        suffix = ".yaml"
    else:
        doc = draw(documents())
        try:
            text = {".toml": _toml, ".json": lambda d: json.dumps(d, default=str), ".yaml": _yaml}[
                suffix
            ](doc)
        except Exception:
            text = json.dumps(doc, default=str)
            suffix = ".json"
    data = text.encode("utf-8", "surrogatepass")
    if kind == "bytes" or draw(st.integers(0, 4)) == 0:
        # mangle: flip, insert or cut bytes (invalid UTF-8 likely)
        edits = draw(
            st.lists(
                st.tuples(st.integers(0, max(len(data), 1)), st.binary(max_size=3)), max_size=4
            )
        )
        buf = bytearray(data)
        for pos, chunk in edits:
            buf[pos : pos + draw(st.integers(0, 2))] = chunk
        data = bytes(buf)
    return suffix, data


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hk-fuzz-") as name:
        yield Path(name)


@SETTINGS
@given(case=texts())
def test_any_text_loads_or_fails_with_a_located_config_error(
    registry: StrategyRegistry, workdir: Path, case: tuple[str, bytes]
) -> None:
    suffix, data = case
    path = workdir / f"config{suffix}"
    path.write_bytes(data)
    os.environ.setdefault("HOME", "/root")
    try:
        config = load_config(path, registry=registry)
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            # a field path, or the whole file, named by its source
            assert issue.path or exc.source == str(path), (issue, exc.source)
            assert issue.message
        assert str(path) in str(exc)
    else:
        assert isinstance(config, ServerConfig)
