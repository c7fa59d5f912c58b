"""What a process holds (file descriptors, child processes, asyncio tasks), to find leaks.

Linux reads ``/proc``; other POSIX systems fall back to ``/dev/fd`` and, when
it is installed, psutil for child processes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Mapping

import attrs

__all__ = ["ResourceSnapshot", "wait_released"]

_PROC = "/proc"


def _fd_dir() -> str | None:
    for candidate in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(candidate):
            return candidate
    return None


def _open_fds() -> dict[int, str]:
    where = _fd_dir()
    if where is None:
        return {}
    out: dict[int, str] = {}
    for name in os.listdir(where):
        try:
            fd = int(name)
        except ValueError:
            continue
        try:
            out[fd] = os.readlink(os.path.join(where, name))
        except OSError:
            # Gone meanwhile (the directory listing's own fd, say) or unreadable.
            continue
    return out


def _proc_stat(pid: str) -> tuple[int, str, str] | None:
    """(ppid, state, command) of ``pid``; None when it is gone."""
    try:
        with open(os.path.join(_PROC, pid, "stat"), "rb") as fh:
            raw = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The command is in parentheses and may itself contain spaces and parentheses.
    lpar, rpar = raw.find("("), raw.rfind(")")
    fields = raw[rpar + 2 :].split()
    if len(fields) < 2:
        return None
    return int(fields[1]), fields[0], raw[lpar + 1 : rpar]


def _descendants() -> dict[int, str]:
    """Every live (or unreaped) descendant process: pid -> a description."""
    me = os.getpid()
    if os.path.isdir(os.path.join(_PROC, "self")):
        parents: dict[int, list[tuple[int, str]]] = {}
        for entry in os.listdir(_PROC):
            if not entry.isdigit():
                continue
            stat = _proc_stat(entry)
            if stat is None:
                continue
            ppid, state, command = stat
            parents.setdefault(ppid, []).append((int(entry), f"{command} (state {state})"))
        out: dict[int, str] = {}
        todo = [me]
        while todo:
            for pid, desc in parents.get(todo.pop(), []):
                if pid not in out:
                    out[pid] = desc
                    todo.append(pid)
        return out
    try:
        import psutil  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - neither /proc nor psutil
        return {}
    return {  # pragma: no cover - non-Linux
        p.pid: f"{p.name()} (state {p.status()})"
        for p in psutil.Process(me).children(recursive=True)
    }


def _running_tasks() -> frozenset[asyncio.Task[object]]:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return frozenset()
    return frozenset(t for t in asyncio.all_tasks() if not t.done())


@attrs.frozen(kw_only=True)
class ResourceSnapshot:
    """Open file descriptors, descendant processes and pending asyncio tasks at one moment.

    ``leaks_since(before)`` lists what exists now but did not then. Take both
    snapshots inside the same event loop to compare tasks.
    """

    fds: Mapping[int, str]
    processes: Mapping[int, str]
    tasks: frozenset[asyncio.Task[object]]

    @classmethod
    def take(cls) -> ResourceSnapshot:
        gc.collect()
        return cls(fds=_open_fds(), processes=_descendants(), tasks=_running_tasks())

    def leaks_since(self, before: ResourceSnapshot) -> list[str]:
        leaks: list[str] = []
        for fd, what in sorted(self.fds.items()):
            if before.fds.get(fd) != what:
                leaks.append(f"file descriptor {fd} still open: {what}")
        for pid, what in sorted(self.processes.items()):
            if pid not in before.processes:
                leaks.append(f"process {pid} still exists: {what}")
        current = asyncio.current_task() if self.tasks else None
        leaks.extend(
            f"asyncio task still pending: {task!r}"
            for task in self.tasks - before.tasks
            if task is not current
        )
        return leaks


async def wait_released(before: ResourceSnapshot, *, timeout: float = 5.0) -> list[str]:
    """Poll until nothing is held that ``before`` did not hold, or ``timeout`` passes.

    Returns what is still held (empty when everything was released). Polling
    lets a loopback server in the same process notice its client closed, and
    lets the event loop finish callbacks that close transports.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        leaks = ResourceSnapshot.take().leaks_since(before)
        if not leaks or time.monotonic() >= deadline:
            return leaks
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
