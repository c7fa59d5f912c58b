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
import subprocess
from collections.abc import Mapping

from healthkit import CheckResult, ErrorInfo, Status, StrategyContext, Target
from healthkit.toolkit import ResultBuilder, excerpt

from ._config import OUTPUT_LIMIT, OUTPUT_SHOWN, ExecConfig

__all__ = ["ExecStrategy"]

#: The monitoring-plugins convention; any other exit code is unknown.
EXIT_STATUS = {0: Status.HEALTHY, 1: Status.DEGRADED, 2: Status.UNHEALTHY}
#: Seconds to wait for the output pipe to close once the process group is dead.
_DRAIN_GRACE = 1.0


def _kill_group(pid: int) -> None:
    # start_new_session made the command a group leader, so its pid is the group's id. The
    # group outlives its leader while any member runs; once all are gone the call fails
    # harmlessly (a recycled pid is a group id only if its new owner leads a group).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _secret_forms(value: str) -> set[str]:
    """How a command may print a secret: as it is, without the trailing newline that
    Kubernetes secrets often carry, line by line, repr-escaped, or the credential of
    ``Bearer <token>`` alone. Forms under four characters would garble the output."""
    forms = {value, value.strip(), repr(value)[1:-1], repr(value.strip())[1:-1]}
    forms.update(line.strip() for line in value.splitlines())
    scheme, sep, credential = value.strip().partition(" ")
    if sep and scheme.isalpha():
        forms.add(credential.strip())
    return {f for f in forms if len(f) >= 4}


class _Collector(asyncio.SubprocessProtocol):
    """Keeps the last ``limit`` bytes of output and drops the rest (still reading it,
    so a chatty command never blocks on a full pipe); tells when the process exits and
    when its output closes, which are different moments when a child keeps the pipe."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self._kept = bytearray()
        self.total = 0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()

    @property
    def kept(self) -> bytes:
        return bytes(self._kept[-self.limit :])

    @property
    def trimmed(self) -> bool:
        """Output before what is kept was dropped."""
        return self.total > self.limit

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self.total += len(data)
        self._kept += data
        if len(self._kept) > 2 * self.limit:  # trimmed now and then, not on every write
            del self._kept[: -self.limit]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class ExecStrategy:
    """Runs the configured command once per check, at most ``max_processes`` at a time."""

    name = "exec"

    def __init__(self, config: ExecConfig) -> None:
        self.config = config
        self._slots = asyncio.Semaphore(config.max_processes)
        self._running: set[int] = set()
        self._result = ResultBuilder(self.name)
        forms: set[str] = set()
        for secret in config.env.values():
            forms |= _secret_forms(secret.get_secret_value())
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(forms, key=len, reverse=True)
        # Output is kept this far past the limit, so a secret that straddles the start of
        # what is kept is still seen whole (and masked) before the text is cut.
        self._margin = max((len(f.encode("utf-8", "surrogateescape")) for f in forms), default=0)

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

    def _show(self, output: bytes, trimmed: bool) -> str:
        """The end of the output, short, printable (no terminal escapes), secrets masked."""
        text = output.decode("utf-8", errors="replace").replace("\r\n", "\n")
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if trimmed:
            # Masked first, cut second: what is kept may begin inside a secret, which no
            # form matches; its first `margin` characters are never shown.
            text = text[self._margin :]
        shown = excerpt(text.strip(), OUTPUT_SHOWN, tail=True, keep="\n\t")
        return shown if not trimmed or shown.startswith("…") else "…" + shown

    # -- the check ------------------------------------------------------------------

    async def acheck(self, target: Target) -> CheckResult:
        async with self._slots:
            return await self._run(target)

    async def _run(self, target: Target) -> CheckResult:
        cfg = self.config
        program = cfg.argv[0]
        loop = asyncio.get_running_loop()
        try:
            transport, collector = await loop.subprocess_exec(
                lambda: _Collector(loop, OUTPUT_LIMIT + self._margin),
                *cfg.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
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
        pid = transport.get_pid()
        self._running.add(pid)
        timed_out = False
        try:
            try:
                await asyncio.wait_for(asyncio.shield(collector.exited), cfg.timeout)
            except asyncio.TimeoutError:
                timed_out = True
        finally:
            # Exit, timeout or cancellation: kill what is left of the group, then let go.
            _kill_group(pid)
            await self._reap(transport, collector)
            self._running.discard(pid)
        shown = self._show(collector.kept, collector.trimmed)
        code = transport.get_returncode()
        if timed_out or code is None:
            detail = f"timed out after {cfg.timeout:g}s; process group killed"
            return self._result(
                target,
                Status.UNHEALTHY,
                f"{detail}: {shown}" if shown else detail,
                ErrorInfo(
                    type="TimeoutError", message=f"{program!r} ran longer than {cfg.timeout:g}s"
                ),
            )
        if code < 0:
            detail = f"killed by {_signal_name(-code)}"
            return self._result(target, Status.UNKNOWN, f"{detail}: {shown}" if shown else detail)
        status = EXIT_STATUS.get(code, Status.UNKNOWN)
        detail = f"exit {code}"
        return self._result(target, status, f"{detail}: {shown}" if shown else detail)

    @staticmethod
    async def _reap(transport: asyncio.SubprocessTransport, collector: _Collector) -> None:
        try:
            # SIGKILL was sent: the exit (and the child watcher's reaping) follows at once.
            await asyncio.shield(collector.exited)
            # The pipe closes once every process of the group is gone; something that left
            # the group (setsid) may hold it open: then stop listening after a grace period.
            await asyncio.wait_for(asyncio.shield(collector.output_closed), _DRAIN_GRACE)
        except asyncio.TimeoutError:
            pass
        finally:
            transport.close()

    async def aclose(self) -> None:
        # Checks still running belong to tasks that are being cancelled; make sure their
        # commands die now rather than at their timeout.
        for pid in list(self._running):
            _kill_group(pid)
