"""``isolation = "thread"``: a strategy instance on an event loop of its own, in a worker thread.

In-process code cannot be pre-empted: a check that calls ``time.sleep`` or a
blocking client freezes the event loop it runs on, and with it every other
check, the health endpoints and signal handling. An isolated instance is
created and used on a worker thread's loop (clients bind to the loop they are
created on), so such a check only freezes its own worker; the caller's hard
deadline still ends it on time, as ``unhealthy``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from ._errors import ClosedError, StrategyCreationError
from ._result import CheckResult, Target
from ._strategy import BatchStrategy, Strategy, StrategyFactory, StrategySpec

__all__ = ["START_TIMEOUT", "ThreadIsolated", "isolate_in_thread"]

T = TypeVar("T")

#: Seconds the factory may take on the worker loop before creation fails.
START_TIMEOUT = 10.0
#: Seconds the worker's leftover tasks get after cancellation when it stops.
_STOP_GRACE = 0.5


class _NoChildren:
    """The StrategyContext of an isolated factory: children would live on another loop."""

    def __init__(self, name: str) -> None:
        self._name = name

    def acquire(self, spec: StrategySpec) -> Strategy:
        raise StrategyCreationError(
            f"strategy {self._name!r} with isolation = 'thread' cannot hold child strategies "
            f"(asked for {spec.strategy!r}); set isolation on the children instead"
        )


class _Worker:
    """A daemon thread running one event loop until stopped."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=_STOP_GRACE))
            for task in left:
                if task.done() and not task.cancelled():
                    task.exception()
                elif not task.done():
                    task._log_destroy_pending = False  # type: ignore[attr-defined]
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise ClosedError("the isolated strategy's worker has stopped") from None

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)


class ThreadIsolated:
    """Forwards ``acheck``/``aclose`` to an instance living on a worker thread's loop.

    Cancelling a forwarded check cancels it on the worker; a check that blocks
    the worker's loop holds only that worker, never the caller's loop.
    """

    def __init__(self, name: str, inner: Strategy, worker: _Worker) -> None:
        self.name = name
        self._inner = inner
        self._worker = worker
        self._closed = False

    @property
    def inner(self) -> Strategy:
        """The wrapped instance (use it only on the worker's loop)."""
        return self._inner

    async def _on_worker(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise ClosedError(f"isolated strategy {self.name!r} is closed")
        return await asyncio.wrap_future(self._worker.submit(coro))

    async def _check(self, target: Target) -> CheckResult:
        return await self._inner.acheck(target)

    async def acheck(self, target: Target) -> CheckResult:
        return await self._on_worker(self._check(target))

    async def _close(self) -> None:
        await self._inner.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            await self._on_worker(self._close())
        finally:
            self._closed = True
            self._worker.stop()
        # Let the worker close its loop (and its file descriptors) before reporting closed.
        await asyncio.get_running_loop().run_in_executor(
            None, self._worker.thread.join, _STOP_GRACE + 1.0
        )

    def __repr__(self) -> str:
        return f"<ThreadIsolated {self.name!r} {self._inner!r}>"


class ThreadIsolatedBatch(ThreadIsolated):
    """:class:`ThreadIsolated` for a :class:`~healthkit.BatchStrategy`."""

    async def _check_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        inner = self._inner
        assert isinstance(inner, BatchStrategy)
        return await inner.acheck_many(targets)

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        return await self._on_worker(self._check_many(targets))


def isolate_in_thread(
    name: str, factory: StrategyFactory, config: Any, *, start_timeout: float = START_TIMEOUT
) -> ThreadIsolated:
    """Start a worker thread and build the instance there, with ``factory(config, context)``.

    The factory's exception, or its taking longer than ``start_timeout``, is
    raised here (and the worker stopped).
    """
    worker = _Worker(f"healthkit-isolated-{name}")

    async def build() -> Strategy:
        return factory(config, _NoChildren(name))

    try:
        inner = worker.submit(build()).result(timeout=start_timeout)
    except concurrent.futures.TimeoutError:
        worker.stop()
        raise TimeoutError(f"the factory took over {start_timeout:g}s") from None
    except BaseException:
        worker.stop()
        raise
    cls = ThreadIsolatedBatch if isinstance(inner, BatchStrategy) else ThreadIsolated
    return cls(name, inner, worker)
