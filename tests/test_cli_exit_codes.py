"""Exit codes of the ``healthkit`` CLI end to end: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown.

A usage error (any command, the group itself) is "unknown" (3), never "unhealthy"
(2); a reader that closes the pipe early (``| head -1``) never changes the status.
The pipe tests run the real console script in a real shell pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from healthkit.cli import cli
from healthkit.testing import OipServer

HEALTHKIT = shutil.which("healthkit", path=os.path.dirname(sys.executable))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def server() -> Iterator[OipServer]:
    srv = OipServer({"alpha": "ready", "sick": "not_ready"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], str]:
    def write(text: str) -> str:
        path = tmp_path / "healthkit.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write


def http_config(url: str, models: str) -> str:
    return f"""
    [defaults.health_check]
    strategy = "http"
    base_url = "{url}"
    timeout = 1.0
    {models}
    """


# -- usage errors exit 3 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="bare healthkit"),
        pytest.param(["bogus"], id="unknown subcommand"),
        pytest.param(["--no-such-flag"], id="unknown group option"),
        pytest.param(["plugins", "--format", "xml"], id="plugins bad format"),
        pytest.param(["new-plugin"], id="new-plugin missing NAME"),
        pytest.param(["new-plugin", "Bad Name!"], id="new-plugin bad NAME"),
        pytest.param(["new-plugin", "noop"], id="new-plugin built-in NAME"),
        pytest.param(["check"], id="check missing CONFIG"),
        pytest.param(["validate", "x.toml", "--format", "xml"], id="validate bad format"),
        pytest.param(["demo", "--no-such-flag"], id="demo unknown option"),
        pytest.param(["--color", "sometimes", "plugins"], id="bad --color"),
    ],
)
def test_usage_errors_exit_3(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # new-plugin must never write into the checkout
    result = run(*args)
    assert result.exit_code == 3, (result.exit_code, result.output)
    assert result.stdout == "" or result.stdout.startswith("Usage:")


def test_usage_error_exits_3_from_the_console_script(tmp_path: Path) -> None:
    assert HEALTHKIT is not None
    for args in ([], ["bogus"], ["plugins", "--format", "xml"], ["new-plugin"]):
        proc = subprocess.run(
            [HEALTHKIT, *args], capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert proc.returncode == 3, (args, proc.returncode, proc.stderr)
        assert "Usage:" in proc.stdout + proc.stderr


def test_help_and_version_still_exit_0() -> None:
    assert run("--help").exit_code == 0
    assert run("--version").exit_code == 0
    assert run("check", "--help").exit_code == 0


# -- a closed pipe keeps the status ----------------------------------------------------------


def _refused_url() -> str:
    # A port nothing listens on: bind, read the port, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_check_piped_into_head_keeps_the_unhealthy_status(write: Callable[[str], str]) -> None:
    # Far more than a pipe buffer (64 KiB) of table, so healthkit is still writing when
    # head exits: every run meets the closed pipe, not two in five.
    assert HEALTHKIT is not None
    models = "".join(f'[models.m{i:04d}.health_check]\nstrategy = "noop"\n' for i in range(1500))
    models += "[models.down]\n"
    path = write(http_config(_refused_url(), models))
    for _ in range(3):
        proc = subprocess.run(
            ["bash", "-c", 'set -o pipefail; "$0" check "$1" | head -1', HEALTHKIT, path],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        assert proc.stdout.split() == [
            "MODEL",
            "STATUS",
            "STRATEGY",
            "ENDPOINT",
            "LATENCY",
            "DETAIL",
        ]
        # Nothing about the pipe on stderr: no traceback, no "Exception ignored".
        assert proc.stderr == ""


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_check_into_an_already_closed_pipe_keeps_the_status(
    write: Callable[[str], str], fmt: str
) -> None:
    # The reader is gone before anything is written: the first write meets EPIPE, every
    # time (a pipeline like "| head -1" only does when head wins the race).
    assert HEALTHKIT is not None
    path = write(
        http_config(_refused_url(), '[models.up.health_check]\nstrategy = "noop"\n[models.down]\n')
    )
    for _ in range(2):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = subprocess.run(
                [HEALTHKIT, "check", path, "--format", fmt],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write_end)
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        assert proc.stderr == ""


# -- --model repeated --------------------------------------------------------------------------


def test_model_repeated_checks_each(server: OipServer, write: Callable[[str], str]) -> None:
    path = write(http_config(server.url, "[models.alpha]\n[models.sick]\n[models.other]\n"))
    result = run("check", path, "--model", "alpha", "--model", "sick", "--format", "json")
    assert result.exit_code == 2, result.output
    data = json.loads(result.stdout)
    assert list(data["models"]) == ["alpha", "sick"]
    assert data["models"]["alpha"]["status"] == "healthy"
    assert data["models"]["sick"]["status"] == "unhealthy"
    assert server.requests["/v2/models/alpha/ready"] == 1
    assert server.requests["/v2/models/sick/ready"] == 1
    assert server.requests["/v2/models/other/ready"] == 0


def test_model_repeated_table_and_worst_status(
    server: OipServer, write: Callable[[str], str]
) -> None:
    path = write(http_config(server.url, "[models.alpha]\n[models.sick]\n"))
    result = run("check", path, "--model", "sick", "--model", "alpha")
    assert result.exit_code == 2, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines()[1:3]]
    assert rows == ["sick", "alpha"]  # in the order asked


def test_model_repeated_same_name_checks_once(
    server: OipServer, write: Callable[[str], str]
) -> None:
    path = write(http_config(server.url, "[models.alpha]\n"))
    result = run("check", path, "--model", "alpha", "--model", "alpha", "--format", "json")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["models"]) == ["alpha"]
    assert server.requests["/v2/models/alpha/ready"] == 1


def test_model_repeated_with_an_unknown_one_exits_3(
    server: OipServer, write: Callable[[str], str]
) -> None:
    path = write(http_config(server.url, "[models.alpha]\n"))
    result = run("check", path, "--model", "alpha", "--model", "nope")
    assert result.exit_code == 3
    assert "unknown model 'nope'" in result.stderr
    assert server.requests["/v2/models/alpha/ready"] == 0


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_validate_into_an_already_closed_pipe_still_says_valid(
    write: Callable[[str], str], fmt: str
) -> None:
    assert HEALTHKIT is not None
    path = write('[models.up.health_check]\nstrategy = "noop"\n')
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [HEALTHKIT, "validate", path, "--format", fmt],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stderr == ""
