"""Colour in the CLI: ``--color auto|always|never``, ``NO_COLOR`` and ``TERM=dumb``.

The console script runs for real, its stdout on a pseudo-terminal (where ``auto``
colours) or on a pipe (where it does not).
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from healthkit.cli import cli
from healthkit.cli._output import color_setting

HEALTHKIT = shutil.which("healthkit", path=os.path.dirname(sys.executable))
ESC = "\x1b["


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "healthkit.toml"
    path.write_text('[models.alpha.health_check]\nstrategy = "noop"\n', encoding="utf-8")
    return str(path)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def on_a_terminal(args: list[str], **env: str) -> tuple[int, str]:
    """Run the console script with stdout on a pseudo-terminal: (exit code, what it wrote)."""
    assert HEALTHKIT is not None
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [HEALTHKIT, *args], stdout=terminal, stderr=subprocess.PIPE, env=_env(**env)
        )
        os.close(terminal)
        terminal = -1
        chunks = []
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            assert ready, "no output within 60 s"
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=60)
        assert proc.stderr is not None
        proc.stderr.close()
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    return code, b"".join(chunks).decode()


def on_a_pipe(args: list[str], **env: str) -> tuple[int, str]:
    assert HEALTHKIT is not None
    proc = subprocess.run(
        [HEALTHKIT, *args], capture_output=True, text=True, env=_env(**env), timeout=60
    )
    return proc.returncode, proc.stdout


def test_auto_colours_a_terminal(config: str) -> None:
    code, out = on_a_terminal(["check", config])
    assert code == 0
    assert ESC in out
    assert "healthy" in out


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"NO_COLOR": "1"}, id="NO_COLOR=1"),
        pytest.param({"NO_COLOR": "yes"}, id="NO_COLOR=yes"),
        pytest.param({"TERM": "dumb"}, id="TERM=dumb"),
    ],
)
def test_auto_honours_no_color_and_dumb_terminals(config: str, env: dict[str, str]) -> None:
    code, out = on_a_terminal(["check", config], **env)
    assert code == 0
    assert "healthy" in out
    assert ESC not in out


def test_an_empty_no_color_does_not_turn_colour_off(config: str) -> None:
    # https://no-color.org: only a non-empty value counts.
    code, out = on_a_terminal(["check", config], NO_COLOR="")
    assert code == 0
    assert ESC in out


def test_never_on_a_terminal(config: str) -> None:
    code, out = on_a_terminal(["--color", "never", "check", config])
    assert code == 0
    assert ESC not in out


def test_always_on_a_pipe_and_over_no_color(config: str) -> None:
    code, out = on_a_pipe(["--color", "always", "check", config], NO_COLOR="1")
    assert code == 0
    assert ESC in out
    code, out = on_a_pipe(["check", config])
    assert code == 0
    assert ESC not in out  # auto on a pipe: plain


def test_color_option_in_process(config: str) -> None:
    always = CliRunner().invoke(cli, ["--color", "always", "check", config])
    assert ESC in always.stdout
    # color=True: the runner acts as a terminal; "never" still wins.
    never = CliRunner().invoke(cli, ["--color", "never", "check", config], color=True)
    assert ESC not in never.stdout
    assert "healthy" in never.stdout


@pytest.mark.parametrize(
    ("choice", "environ", "expected"),
    [
        ("auto", {}, None),
        ("auto", {"NO_COLOR": "1"}, False),
        ("auto", {"NO_COLOR": ""}, None),
        ("auto", {"TERM": "dumb"}, False),
        ("auto", {"TERM": "xterm"}, None),
        ("always", {"NO_COLOR": "1", "TERM": "dumb"}, True),
        ("never", {}, False),
    ],
)
def test_color_setting(choice: str, environ: dict[str, str], expected: bool | None) -> None:
    assert color_setting(choice, environ) is expected
