"""The ``exec`` strategy with real processes: exit codes, output, environment, process groups."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from healthkit_exec import OUTPUT_LIMIT, OUTPUT_SHOWN, ExecConfig, ExecStrategy

from healthkit import ConfigError, Status, StrategyRegistry, Target, load_config
from healthkit.testing import ResourceSnapshot, wait_released
from healthkit.toolkit import guarded_check

TARGET = Target(model="alpha", version="7")
PY = sys.executable


async def run(argv: list[str], *, target: Target = TARGET, **options: Any) -> Any:
    strategy = ExecStrategy(ExecConfig(argv=argv, **options))
    try:
        return await strategy.acheck(target)
    finally:
        await strategy.aclose()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in (b"Z", b"X")


async def wait_dead(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, Status.HEALTHY),
        (1, Status.DEGRADED),
        (2, Status.UNHEALTHY),
        (3, Status.UNKNOWN),
        (127, Status.UNKNOWN),
    ],
)
async def test_exit_codes_map_to_statuses(code: int, status: Status) -> None:
    result = await run(["sh", "-c", f"echo 'said {code}'; exit {code}"])
    assert result.status is status
    assert result.detail == f"exit {code}: said {code}"
    assert result.strategy == "exec" and result.target == TARGET


async def test_stderr_is_captured_too() -> None:
    result = await run(["sh", "-c", "echo out; echo err >&2; exit 1"])
    assert result.status is Status.DEGRADED
    assert "out" in result.detail and "err" in result.detail


async def test_the_detail_shows_a_short_excerpt_of_the_end_and_the_output_is_drained() -> None:
    # 1 MiB is far more than a pipe buffer: the command only finishes if it is drained.
    script = "import sys; sys.stdout.write('x' * (1 << 20) + 'the end\\n')"
    result = await run([PY, "-c", script], timeout=10)
    assert result.status is Status.HEALTHY, result.detail
    tail = ("x" * OUTPUT_SHOWN + "the end")[-(OUTPUT_SHOWN - 1) :]
    assert result.detail == f"exit 0: …{tail}"


async def test_control_characters_of_the_output_are_shown_as_pictures() -> None:
    # Terminal escapes (colour, cursor moves, a carriage return that overwrites the line)
    # must not reach `healthkit check` output or logs; line breaks and tabs stay.
    script = r'printf "\000\033[31mred\033[0m\tok\r\nline 2\rover\177\n"'
    result = await run(["sh", "-c", script])
    assert result.detail == "exit 0: ␀␛[31mred␛[0m\tok\nline 2␍over␡"


async def test_a_secret_cut_by_what_is_kept_shows_no_part(tmp_path: Path) -> None:
    # Only the last OUTPUT_LIMIT bytes (plus the longest secret) are kept: a secret whose
    # start was dropped matches no form, so the first characters kept are never shown.
    secret = "exec-secret-token"
    script = (
        "import os, sys; s = os.environ['TOKEN']; "
        f"sys.stdout.write('x' * 10000 + s + '\\n' * ({OUTPUT_LIMIT} + len(s) - 5))"
    )
    result = await run([PY, "-c", script], env={"TOKEN": secret}, timeout=10)
    assert result.status is Status.HEALTHY, result.detail
    assert secret[-5:] not in result.detail, result.detail


async def test_argv_is_never_given_to_a_shell(tmp_path: Path) -> None:
    result = await run(["echo", "$HOME", ";", "touch", str(tmp_path / "pwned"), "|", "`id`"])
    assert result.detail == f"exit 0: $HOME ; touch {tmp_path / 'pwned'} | `id`"
    assert not (tmp_path / "pwned").exists()
    missing = await run(["echo hi; true"])
    assert missing.status is Status.UNKNOWN
    assert "cannot run 'echo hi; true'" in missing.detail


async def test_a_missing_program_is_unknown() -> None:
    result = await run(["/definitely/not/a/program"])
    assert result.status is Status.UNKNOWN
    assert result.error is not None and result.error.type == "FileNotFoundError"


async def test_death_by_signal_is_unknown() -> None:
    result = await run(["sh", "-c", "kill -TERM $$"])
    assert result.status is Status.UNKNOWN
    assert result.detail == "killed by SIGTERM"


async def test_only_allow_listed_environment_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A short PATH, so that the whole of `env` fits in the detail's excerpt.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("HK_TEST_VISIBLE", "yes")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak")
    monkeypatch.setenv("LANG", "C.UTF-8")
    result = await run(["env"], pass_env=["PATH", "HK_TEST_*"], env={"EXTRA": "set-by-config"})
    seen = dict(line.split("=", 1) for line in result.detail.removeprefix("exit 0: ").splitlines())
    assert seen == {
        "PATH": os.environ["PATH"],
        "HK_TEST_VISIBLE": "yes",
        "EXTRA": "***",  # config env values are secret, even in the command's own output
        "HEALTHKIT_MODEL": "alpha",
        "HEALTHKIT_MODEL_VERSION": "7",
    }
    default = await run(["env"], target=Target())
    names = {line.split("=", 1)[0] for line in default.detail.removeprefix("exit 0: ").splitlines()}
    assert names == {"PATH", "LANG"}


async def test_secret_env_values_are_masked_in_output() -> None:
    result = await run(
        [PY, "-c", "import os; print('token is', os.environ['TOKEN'])"],
        env={"TOKEN": "exec-secret-token"},
    )
    assert result.status is Status.HEALTHY
    assert result.detail == "exit 0: token is ***"
    assert "exec-secret-token" not in repr(
        ExecConfig(argv=["x"], env={"TOKEN": "exec-secret-token"})
    )


async def test_the_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    before = ResourceSnapshot.take()
    start = time.monotonic()
    result = await run(
        ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo started; wait"], timeout=0.5
    )
    took = time.monotonic() - start
    print(f"timed-out check took {took:.3f}s (timeout 0.5s)")
    assert result.status is Status.UNHEALTHY
    assert result.detail == "timed out after 0.5s; process group killed: started"
    assert result.error is not None and result.error.type == "TimeoutError"
    grandchild = int(pidfile.read_text())
    assert await wait_dead(grandchild), "the grandchild survived the timeout"
    assert await wait_released(before) == []


async def test_cancellation_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    before = ResourceSnapshot.take()
    strategy = ExecStrategy(
        ExecConfig(argv=["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=60)
    )
    # The monitor's deadline cancels the check long before the strategy's own timeout.
    result = await guarded_check(strategy, "exec", TARGET, timeout=0.5)
    await strategy.aclose()
    assert result.error is not None and result.error.type == "TimeoutError"
    assert await wait_dead(int(pidfile.read_text())), "the grandchild survived cancellation"
    assert await wait_released(before) == []


async def test_leftovers_of_a_finished_command_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    start = time.monotonic()
    # The background sleep keeps the output pipe open after sh exits.
    result = await run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo done"], timeout=30)
    print(f"check with a lingering child took {time.monotonic() - start:.3f}s")
    assert result.status is Status.HEALTHY
    assert result.detail == "exit 0: done"
    assert await wait_dead(int(pidfile.read_text()))


async def test_max_processes_serialises_checks(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    script = f"mkdir {lock} || exit 2; sleep 0.1; rmdir {lock}"
    strategy = ExecStrategy(ExecConfig(argv=["sh", "-c", script], max_processes=1, timeout=5))
    try:
        results = await asyncio.gather(*(strategy.acheck(Target(model=f"m{i}")) for i in range(3)))
    finally:
        await strategy.aclose()
    assert [r.status for r in results] == [Status.HEALTHY] * 3, [r.detail for r in results]


def test_registered_through_its_entry_point() -> None:
    stype = StrategyRegistry().get("exec")
    assert stype.distribution == "healthkit-exec"
    assert stype.config_class is ExecConfig


def test_a_command_string_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "models": {
                    "m": {
                        "health_check": {"strategy": "exec", "argv": "curl -f http://x | grep ok"}
                    }
                }
            },
            registry=StrategyRegistry(),
        )
    assert "models.m.health_check.argv: must be a list of strings" in str(info.value)
    assert "never run through a shell" in str(info.value)


def test_allow_list_order_does_not_matter() -> None:
    a = ExecConfig(argv=["true"], pass_env=["PATH", "HOME", "PATH"])
    b = ExecConfig(argv=["true"], pass_env=["HOME", "PATH"])
    assert a == b and hash(a) == hash(b)


async def test_a_process_that_leaves_the_group_cannot_hang_a_check(tmp_path: Path) -> None:
    pidfile = tmp_path / "escapee.pid"
    # setsid puts the sleep in a new session, out of reach of the group kill; it holds
    # the output pipe, so the check stops listening after a grace period instead.
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(['setsid', 'sleep', '60'])\n"
        "open(sys.argv[1], 'w').write(str(p.pid))\n"
        "print('bye')\n"
    )
    argv = [PY, "-c", script, str(pidfile)]
    before = ResourceSnapshot.take()
    start = time.monotonic()
    try:
        result = await run(argv, timeout=10)
        print(f"check with an escaped child took {time.monotonic() - start:.3f}s")
        assert result.status is Status.HEALTHY
        assert result.detail == "exit 0: bye"
        assert [leak for leak in await wait_released(before) if "file descriptor" in leak] == []
    finally:
        os.kill(int(pidfile.read_text()), 9)
