"""The resolver: equal configs share one strategy instance, reference-counted.

Holders (models, or a composite instance holding its children) each hold one
spec. An instance lives while at least one holder holds its spec and is closed
when the last one lets go; closing a composite releases its children in turn.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import ClosedError, StrategyCreationError, UnknownStrategyError
from ._guard import wait_abandoning
from ._isolation import isolate_in_thread
from ._strategy import Strategy, StrategySpec
from ._walk import collect

if TYPE_CHECKING:
    from ._plan import PlannedInstance
    from ._registry import StrategyRegistry

__all__ = [
    "CLOSE_TIMEOUT",
    "ONE_SHOT_CLOSE_TIMEOUT",
    "PlannedInstance",
    "ReloadPlan",
    "Resolver",
    "ResolverStats",
    "child_specs",
]

log = logging.getLogger("healthkit.resolver")

# Holder names for composite children (and for specs staged by apply) start with a NUL,
# which no model name can hold, so they never collide with model names: the config
# loader rejects control characters in model names (validators.target_name), and
# acquire() and apply() refuse any name starting with a NUL.
_CHILD_PREFIX = "\x00child:"


def __getattr__(name: str) -> object:
    # Its own module, imported by plan(): an attrs class costs every process about a
    # millisecond to define, and a one-shot ``healthkit check`` never plans.
    if name == "PlannedInstance":
        from ._plan import PlannedInstance

        return PlannedInstance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _refuse_internal(names: Iterable[str]) -> None:
    for name in names:
        if name.startswith("\x00"):
            raise ValueError(
                f"holder names may not start with a NUL character (reserved), got {name!r}"
            )


#: Default seconds one instance's ``aclose()`` may take before it is abandoned (and
#: logged); ``Resolver(close_timeout=...)`` overrides it (one-shot CLI commands use 0.5).
CLOSE_TIMEOUT = 5.0
#: The close bound of one-shot commands (``healthkit check``): they exit right after,
#: so a hanging close is not worth waiting for.
ONE_SHOT_CLOSE_TIMEOUT = 0.5


@attrs.frozen(kw_only=True)
class ResolverStats:
    """How many models are held, and how many live instances serve them."""

    models: int
    instances: int

    def to_dict(self) -> dict[str, int]:
        return {"models": self.models, "instances": self.instances}


@attrs.frozen(kw_only=True)
class ReloadPlan:
    """What a reload changed: models added, changed, removed and kept as they were."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    instances_created: int = 0
    instances_closed: int = 0


def child_specs(value: Any) -> list[StrategySpec]:
    """Every spec nested in a strategy config: what its factory acquires as children."""
    return collect(value, lambda part: isinstance(part, StrategySpec))


class _Entry:
    """One shared instance and who holds it. A plain class: defining an attrs class
    costs every process (each one-shot ``healthkit check``) about a millisecond."""

    __slots__ = ("children", "instance", "refs", "spec")

    def __init__(self, *, spec: StrategySpec, instance: Strategy, children: list[str]) -> None:
        self.spec = spec
        self.instance = instance
        self.refs = 0
        self.children = children


class _ChildContext:
    """The StrategyContext a factory sees: children are held in this instance's name."""

    def __init__(self, resolver: Resolver, owner: str) -> None:
        self._resolver = resolver
        self._owner = owner
        self._counter = itertools.count()
        self.holders: list[str] = []

    def acquire(self, spec: StrategySpec) -> Strategy:
        holder = f"{_CHILD_PREFIX}{self._owner}/{next(self._counter)}"
        # Reentrant: a factory calls this under the resolver's lock, but one that
        # acquires lazily (after it returned) must not race other acquisitions.
        with self._resolver._lock:
            instance = self._resolver._acquire_locked(holder, spec)
            self.holders.append(holder)
        return instance


class Resolver:
    """Hands out shared strategy instances by spec and closes them when unused.

    ``close_timeout`` bounds each instance's ``aclose()`` (default
    :data:`CLOSE_TIMEOUT`): a close that takes longer is cancelled and left
    behind, and a warning names the plugin.
    """

    def __init__(self, registry: StrategyRegistry, *, close_timeout: float | None = None) -> None:
        if close_timeout is not None and not close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, got {close_timeout!r}")
        self._registry = registry
        self._close_timeout = close_timeout
        self._lock = threading.RLock()
        self._held: dict[str, StrategySpec] = {}
        self._entries: dict[StrategySpec, _Entry] = {}
        #: The entries of ``_entries`` by ``id()`` of their spec: see :meth:`get`.
        self._by_id: dict[int, _Entry] = {}
        self._ids = itertools.count(1)
        self._pending_close: list[_Entry] = []
        self._closed = False
        self._created = 0
        self._closed_count = 0

    # -- acquiring -------------------------------------------------------------

    def acquire(self, holder: str, spec: StrategySpec) -> Strategy:
        """Hold ``spec`` in the name of ``holder`` (a model) and return its shared instance.

        A holder holds one spec at a time: acquiring another spec for it swaps, and
        the old one is released (closed by the next :meth:`release`, :meth:`apply` or
        :meth:`aflush`).
        Creating an instance happens under a lock, so concurrent callers of one
        spec never build two instances.
        """
        _refuse_internal((holder,))
        with self._lock:
            return self._acquire_locked(holder, spec)

    def _acquire_locked(self, holder: str, spec: StrategySpec) -> Strategy:
        if self._closed:
            raise ClosedError("resolver is closed")
        try:
            hash(spec)
        except TypeError:
            raise StrategyCreationError(
                f"strategy {spec.strategy!r}: its config is not hashable, so equal configs "
                "cannot share an instance; declare the config class with @attrs.frozen"
            ) from None
        previous = self._held.get(holder)
        if previous == spec:
            return self._entries[spec].instance
        entry = self._entries.get(spec)
        if entry is None:
            entry = self._create(spec)
        entry.refs += 1
        self._held[holder] = spec
        if previous is not None:
            self._decref(previous)
        return entry.instance

    def _create(self, spec: StrategySpec) -> _Entry:
        stype = self._registry.get(spec.strategy)
        context = _ChildContext(self, f"{spec.strategy}#{next(self._ids)}")
        try:
            if spec.isolation == "thread":
                instance: Strategy = isolate_in_thread(spec.strategy, stype.factory, spec.config)
            else:
                instance = stype.factory(spec.config, context)
        except Exception as exc:
            for child in reversed(context.holders):
                self._release_locked(child)
            raise StrategyCreationError(
                f"strategy {spec.strategy!r} from {stype.origin} failed to start: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        entry = _Entry(spec=spec, instance=instance, children=context.holders)
        self._entries[spec] = entry
        self._by_id[id(spec)] = entry
        self._created += 1
        return entry

    # -- releasing -------------------------------------------------------------

    def _decref(self, spec: StrategySpec) -> None:
        entry = self._entries[spec]
        entry.refs -= 1
        if entry.refs == 0:
            del self._entries[spec]
            if self._by_id.get(id(entry.spec)) is entry:
                del self._by_id[id(entry.spec)]
            self._pending_close.append(entry)
            for child in reversed(entry.children):
                self._release_locked(child)

    def _release_locked(self, holder: str) -> None:
        spec = self._held.pop(holder, None)
        if spec is not None:
            self._decref(spec)

    async def release(self, *holders: str) -> None:
        """Let go of each holder's spec; instances nobody holds any more are closed."""
        with self._lock:
            for holder in holders:
                self._release_locked(holder)
        await self._flush()

    async def aflush(self) -> None:
        """Close instances let go of by a synchronous :meth:`acquire` (a swap or a failure)."""
        await self._flush()

    async def _flush(self) -> None:
        with self._lock:
            pending, self._pending_close = self._pending_close, []
        # Parents were queued before their children: close in that order so a
        # composite never sees a closed child while it still runs.
        timeout = CLOSE_TIMEOUT if self._close_timeout is None else self._close_timeout
        for entry in pending:
            await self._close_one(entry, timeout)
            self._closed_count += 1

    def _origin(self, spec: StrategySpec) -> str:
        try:
            return self._registry.get(spec.strategy).origin
        except UnknownStrategyError:
            return "an unknown plugin"

    async def _close_one(self, entry: _Entry, timeout: float) -> None:
        """Close one instance; never raises, never waits past ``timeout`` (plus a grace)."""
        name = entry.spec.strategy
        try:
            # A plugin whose close hangs (or swallows cancellation) must not stall
            # every reload and shutdown: it is left behind, not awaited.
            closing = asyncio.ensure_future(entry.instance.aclose())
            if isinstance(closing, asyncio.Task):
                closing.set_name(f"close of {name!r}")
            finished, _ = await wait_abandoning(closing, timeout)
        except Exception as exc:
            log.warning(
                "closing strategy %r failed (%s): %s: %s",
                name,
                self._origin(entry.spec),
                type(exc).__name__,
                exc,
            )
            log.debug("closing strategy %r failed", name, exc_info=exc)
            return
        if not finished:
            log.error(
                "closing strategy %r (%s) took over %gs; abandoned",
                name,
                self._origin(entry.spec),
                timeout,
            )

    async def apply(self, models: Mapping[str, StrategySpec]) -> ReloadPlan:
        """Make the held models exactly ``models``: only what changed is touched.

        New and changed models are acquired first; if a factory fails, every
        acquisition of this call is undone and the previous state stays intact.
        """
        _refuse_internal(models)
        created_before, closed_before = self._created, self._closed_count
        with self._lock:
            current = {h: s for h, s in self._held.items() if not h.startswith(_CHILD_PREFIX)}
            added = [m for m in models if m not in current]
            changed = [m for m in models if m in current and current[m] != models[m]]
            removed = [m for m in current if m not in models]
            unchanged = [m for m in models if m in current and current[m] == models[m]]
            staged: list[str] = []
            try:
                # Stage new specs under internal holders first, so a failing factory
                # leaves every model on the instance it had.
                for name in (*added, *changed):
                    holder = f"{_CHILD_PREFIX}staged/{name}"
                    self._acquire_locked(holder, models[name])
                    staged.append(holder)
            except Exception as exc:
                failure: Exception | None = exc
                for holder in staged:
                    self._release_locked(holder)
            else:
                failure = None
                for name in (*added, *changed):
                    self._acquire_locked(name, models[name])
                for holder in staged:
                    self._release_locked(holder)
                for name in removed:
                    self._release_locked(name)
        await self._flush()
        if failure is not None:
            raise failure
        return ReloadPlan(
            added=tuple(added),
            changed=tuple(changed),
            removed=tuple(removed),
            unchanged=tuple(unchanged),
            instances_created=self._created - created_before,
            instances_closed=self._closed_count - closed_before,
        )

    async def aclose(self) -> None:
        """Release every holder and close every instance; idempotent."""
        with self._lock:
            self._closed = True
            for holder in [h for h in self._held if not h.startswith(_CHILD_PREFIX)]:
                self._release_locked(holder)
        await self._flush()

    # -- queries ---------------------------------------------------------------

    def get(self, holder: str) -> Strategy:
        """The instance currently serving ``holder``; ``KeyError`` if it holds nothing."""
        # By identity first: equal specs are shared objects (the loader interns them),
        # and hashing a deep config on every probe was most of this call's cost. And
        # without the lock (the scheduler asks once per probe): under the GIL each dict
        # read sees a locked change whole, a holder is swapped before its old spec is
        # released, and the identity test catches an id reused after a release, so
        # this answers what the locked read would have just before or after a
        # concurrent change.
        spec = self._held.get(holder)
        if spec is not None:
            entry = self._by_id.get(id(spec))
            if entry is not None and entry.spec is spec:
                return entry.instance
        with self._lock:  # a spec equal to its entry's but not the same object
            return self._entries[self._held[holder]].instance

    def spec_of(self, holder: str) -> StrategySpec:
        with self._lock:
            return self._held[holder]

    def holders(self) -> list[str]:
        """Model holders (composite children are internal and left out)."""
        with self._lock:
            return [h for h in self._held if not h.startswith(_CHILD_PREFIX)]

    def live_specs(self) -> list[StrategySpec]:
        with self._lock:
            return list(self._entries)

    def refcount(self, spec: StrategySpec) -> int:
        with self._lock:
            entry = self._entries.get(spec)
            return 0 if entry is None else entry.refs

    def stats(self) -> ResolverStats:
        with self._lock:
            models = sum(1 for h in self._held if not h.startswith(_CHILD_PREFIX))
            return ResolverStats(models=models, instances=len(self._entries))

    @staticmethod
    def plan(models: Iterable[tuple[str, StrategySpec]]) -> list[PlannedInstance]:
        """The instances holding ``(model, spec)`` pairs would create, without creating any.

        The dedupe plan (``healthkit validate`` shows it): equal specs share one
        instance, and a composite's children are instances too, shared with any
        model whose spec is equal, since a factory acquires the specs nested in
        its config through its context (see :func:`child_specs`).
        """
        from ._plan import PlannedInstance

        ids: dict[StrategySpec, int] = {}
        held: dict[int, list[str]] = {}
        used_by: dict[int, list[int]] = {}
        children: dict[int, list[int]] = {}
        specs: dict[int, StrategySpec] = {}

        def visit(spec: StrategySpec) -> int:
            found = ids.get(spec)
            if found is not None:
                return found
            new = len(ids) + 1
            ids[spec] = new
            specs[new] = spec
            held[new], used_by[new], children[new] = [], [], []
            for child in child_specs(spec.config):
                child_id = visit(child)
                children[new].append(child_id)
                if new not in used_by[child_id]:
                    used_by[child_id].append(new)
            return new

        for name, spec in models:
            held[visit(spec)].append(name)
        return [
            PlannedInstance(
                id=i,
                spec=specs[i],
                models=tuple(held[i]),
                used_by=tuple(used_by[i]),
                children=tuple(children[i]),
            )
            for i in sorted(specs)
        ]

    @property
    def closed(self) -> bool:
        return self._closed
