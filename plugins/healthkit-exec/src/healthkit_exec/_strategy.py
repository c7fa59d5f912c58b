"""The ``exec`` strategy: a command's exit code is the status.

Each command starts in a new session (so in its own process group) and that
whole group is killed when the check ends, however it ends: exit, timeout or
cancellation. Nothing a command starts outlives its check.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import signal
from collections.abc import Mapping

from healthkit import CheckResult, ErrorInfo, Status, StrategyContext, Target

from ._config import OUTPUT_LIMIT, ExecConfig

__all__ = ["ExecStrategy"]

#: The monitoring-plugins convention; any other exit code is unknown.
EXIT_STATUS = {0: Status.HEALTHY, 1: Status.DEGRADED, 2: Status.UNHEALTHY}
#: Seconds to wait for the output pipe to close once the process group is dead.
_DRAIN_GRACE = 1.0


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def _read_capped(stream: asyncio.StreamReader) -> tuple[bytes, bool]:
    """Everything up to OUTPUT_LIMIT bytes, and whether more came; keeps draining either way,
    so a chatty command never blocks on a full pipe."""
    kept = bytearray()
    cut = False
    while chunk := await stream.read(65536):
        room = OUTPUT_LIMIT - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            cut = True
    return bytes(kept), cut


class ExecStrategy:
    """Runs the configured command once per check, at most ``max_processes`` at a time."""

    name = "exec"

    def __init__(self, config: ExecConfig) -> None:
        self.config = config
        self._slots = asyncio.Semaphore(config.max_processes)
        self._running: set[int] = set()

    @classmethod
    def create(cls, config: ExecConfig, context: StrategyContext) -> ExecStrategy:
        return cls(config)

    def __repr__(self) -> str:
        return f"<ExecStrategy {self.config.argv[0]!r}>"

    # -- environment and output -------------------------------------------------

    def environment(self, target: Target, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """What the command sees: allow-listed variables, ``env``, and the target."""
        source = os.environ if base is None else base
        patterns = self.config.pass_env
        env = {k: v for k, v in source.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
        env.update({k: s.get_secret_value() for k, s in self.config.env.items()})
        if target.model is not None:
            env["HEALTHKIT_MODEL"] = target.model
        if target.version is not None:
            env["HEALTHKIT_MODEL_VERSION"] = target.version
        return env

    def _show(self, output: bytes, cut: bool) -> str:
        text = output.decode("utf-8", errors="replace").strip()
        for secret in self.config.env.values():
            value = secret.get_secret_value()
            if value:
                text = text.replace(value, "***")
        if cut:
            text += f" [output cut at {OUTPUT_LIMIT} bytes]"
        return text

    def _result(
        self, target: Target, status: Status, detail: str, error: ErrorInfo | None = None
    ) -> CheckResult:
        return CheckResult(status=status, strategy=self.name, target=target, detail=detail, error=error)

    # -- the check ------------------------------------------------------------------

    async def acheck(self, target: Target) -> CheckResult:
        async with self._slots:
            return await self._run(target)

    async def _run(self, target: Target) -> CheckResult:
        cfg = self.config
        program = cfg.argv[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                *cfg.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self.environment(target),
                cwd=cfg.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            # The check could not even run: health is unknown, not bad.
            return self._result(
                target,
                Status.UNKNOWN,
                f"cannot run {program!r}: {exc.strerror or exc}",
                ErrorInfo.from_exception(exc),
            )
        self._running.add(proc.pid)
        assert proc.stdout is not None
        reader = asyncio.ensure_future(_read_capped(proc.stdout))
        code: int | None = None
        try:
            code = await asyncio.wait_for(proc.wait(), cfg.timeout)
        except asyncio.TimeoutError:
            code = None
        finally:
            # Exit, timeout or cancellation: kill what is left of the group, then reap.
            _kill_group(proc.pid)
            output, cut = await self._reap(proc, reader)
            self._running.discard(proc.pid)
        shown = self._show(output, cut)
        if code is None:
            detail = f"timed out after {cfg.timeout:g}s; process group killed"
            return self._result(
                target,
                Status.UNHEALTHY,
                f"{detail}: {shown}" if shown else detail,
                ErrorInfo(type="TimeoutError", message=f"{program!r} ran longer than {cfg.timeout:g}s"),
            )
        if code < 0:
            detail = f"killed by {_signal_name(-code)}"
            return self._result(target, Status.UNKNOWN, f"{detail}: {shown}" if shown else detail)
        status = EXIT_STATUS.get(code, Status.UNKNOWN)
        detail = f"exit {code}"
        return self._result(target, status, f"{detail}: {shown}" if shown else detail)

    @staticmethod
    async def _reap(
        proc: asyncio.subprocess.Process, reader: asyncio.Future[tuple[bytes, bool]]
    ) -> tuple[bytes, bool]:
        await proc.wait()
        try:
            # The pipe closes once every process of the group is gone.
            return await asyncio.wait_for(asyncio.shield(reader), _DRAIN_GRACE)
        except asyncio.TimeoutError:
            # Something left the group (setsid) and still holds the pipe: stop listening.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
            return b"", False

    async def aclose(self) -> None:
        # Checks still running belong to tasks that are being cancelled; make sure their
        # commands die now rather than at their timeout.
        for pid in list(self._running):
            _kill_group(pid)
