"""Secrets stay masked however a library message spells them, ``${VAR}`` values included.

A token with a trailing newline (Kubernetes secrets often end in one) shows up in
messages repr-escaped, bytes-quoted, stripped or percent-encoded; a value taken from
the environment is a secret wherever it lands (a query string, say); the ``exec``
plugin masks a command's output the same way.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from healthkit import (
    Secret,
    StrategyRegistry,
    StrategySpec,
    Target,
    describe_spec,
    load_config,
)
from healthkit._redact import Redactor
from healthkit.cli import cli
from healthkit.toolkit import FrozenMap

TOKEN = "s3cr3t-Tk9Qw"
RAW = f"Bearer {TOKEN}\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], str]:
    def write(text: str, name: str = "c.toml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def _redactor(registry: StrategyRegistry) -> Redactor:
    config = load_config(
        {
            "defaults": {
                "health_check": {"strategy": "http", "base_url": "http://svc-user:pa ss%wd@h"}
            },
            "models": {"m": {}},
        },
        registry=registry,
    )
    # A header that cannot be sent is a config error now; a plugin's own Secret field
    # (or a secret a library echoes back) can still carry one.
    plugin_spec = StrategySpec(strategy="plugin", config=FrozenMap({"token": Secret(RAW)}))
    return Redactor([config.default, plugin_spec])


@pytest.mark.parametrize(
    "message",
    [
        f"Illegal header value {RAW.encode()!r}",  # httpx: bytes-quoted, \n escaped
        f"Illegal header value b'{RAW}'",  # ... and as plain text
        f"header {RAW!r} rejected",  # repr-escaped
        f"value {RAW.strip()} rejected",  # stripped of its newline
        f"token {TOKEN} expired",  # the credential alone
        f"GET http://h/?auth={urllib.parse.quote(RAW)}",  # percent-encoded
        f"GET http://h/?auth={urllib.parse.quote_plus(RAW)}",
        f"{json.dumps(RAW)}",  # JSON-escaped
    ],
)
def test_redactor_masks_every_form_of_a_secret(registry: StrategyRegistry, message: str) -> None:
    shown = _redactor(registry)(message)
    assert TOKEN not in shown
    assert "***" in shown


def test_redactor_masks_url_credentials_and_basic_auth(registry: StrategyRegistry) -> None:
    redact = _redactor(registry)
    shown = redact("as svc-user with pa ss%wd, or pa%20ss%25wd, Basic c3ZjLXVzZXI6cGEgc3Mld2Q=")
    assert "svc-user" not in shown
    assert "pa ss" not in shown and "pa%20ss" not in shown
    assert "c3ZjLXVzZXI6cGEgc3Mld2Q=" not in shown


def test_env_values_are_secrets_wherever_they_land(
    registry: StrategyRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HK_API_KEY", "k3y-in-query-8812")
    monkeypatch.setenv("HK_HOST", "predictor.internal")
    config = load_config(
        {
            "defaults": {
                "health_check": {
                    "strategy": "http",
                    "base_url": "http://${HK_HOST}:8080/?api_key=${HK_API_KEY}",
                }
            },
            "models": {"m": {}},
        },
        registry=registry,
    )
    assert config.secrets == {"k3y-in-query-8812", "predictor.internal"}
    redact = Redactor.for_config(config)
    described = json.dumps(describe_spec(config.models["m"].check, redact=redact))
    assert "k3y-in-query-8812" not in described
    assert "predictor.internal" not in described
    assert "api_key=***" in described
    # without a redactor describe_spec masks only what the spec itself knows is secret
    assert "k3y-in-query-8812" in json.dumps(describe_spec(config.models["m"].check))


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_validate_never_prints_an_env_value(
    write: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setenv("HK_API_KEY", "k3y-in-query-8812")
    path = write(
        """
[defaults.health_check]
strategy = "http"
base_url = "http://h/?api_key=${HK_API_KEY}"
[models.a]
"""
    )
    result = run("validate", path, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert "k3y-in-query-8812" not in result.output
    assert "api_key=***" in result.output


def test_check_never_prints_an_env_value(
    write: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HK_SECRET_ARG", "arg-s3cr3t-5521")
    path = write(
        f"""
[models.a.health_check]
strategy = "exec"
argv = [{json.dumps(sys.executable)}, "-c", "import sys; print(sys.argv[1]); sys.exit(2)",
        "${{HK_SECRET_ARG}}"]
""",
    )
    for fmt in ("table", "json"):
        result = run("check", path, "--format", fmt)
        assert result.exit_code == 2, result.output
        assert "arg-s3cr3t-5521" not in result.output
        assert "***" in result.output


@pytest.mark.parametrize(
    "printed",
    [
        'print(os.environ["TOKEN"])',  # the value with its newline, then print's own
        'print(repr(os.environ["TOKEN"]))',  # repr-escaped
        'print(os.environ["TOKEN"].split()[1])',  # the credential alone
        'sys.stdout.write("x" * 4090 + os.environ["TOKEN"])',  # straddling the output cut
    ],
)
async def test_exec_masks_a_header_like_secret_in_the_output(printed: str) -> None:
    pytest.importorskip("healthkit_exec")
    from healthkit_exec import ExecConfig, ExecStrategy

    strategy = ExecStrategy(
        ExecConfig(
            argv=[sys.executable, "-c", f"import os, sys; {printed}"],
            env={"TOKEN": RAW},
            timeout=10,
        )
    )
    try:
        result = await strategy.acheck(Target(model="m"))
    finally:
        await strategy.aclose()
    assert result.detail.startswith("exit 0")
    assert "s3cr" not in result.detail  # not even the first part of it
    assert "***" in result.detail
