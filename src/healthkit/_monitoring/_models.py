"""Per-model state, the index of models by strategy instance, and transitions."""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import attrs

from .._config import ModelConfig
from .._guard import deadline_for
from .._monitor_settings import MonitorSettings
from .._result import CheckResult, Target
from .._status import Status
from .._strategy import StrategySpec
from ._outage import is_starved
from ._records import Transition, TransitionListener
from ._thresholds import Readiness, ThresholdState
from ._thresholds import mark_down as thresholds_marked_down
from ._thresholds import observe as thresholds_after

__all__ = ["Key", "ModelState", "Models", "Probe"]

log = logging.getLogger("healthkit.monitor")

#: (spec id, target): a spec id names one shared instance (equal specs, one id), and
#: small ints hash in no time, unlike a deep config hashed on every lookup.
Key = tuple[int, Target]


_START = ThresholdState()

#: Bound of ``Models._after``: states not from the shared set (``restart``,
#: ``mark_down``) are new objects each time.
_AFTER_MAX = 1024

_new = object.__new__
_set = object.__setattr__
_now = dt.datetime.now
_UTC = dt.timezone.utc
#: A result checked at most this long ago was checked "now", for a transition's time.
_SAME_MOMENT = dt.timedelta(seconds=1)


def _new_transition(
    model: str, old: Status, new: Status, result: CheckResult, at: dt.datetime
) -> Transition:
    """``Transition(model=..., ...)`` built field by field (what its frozen ``__init__``
    does, without the keyword call): a hundred thousand first transitions at start, and
    one per model each time a status page lists the models' ``since``."""
    tr = _new(Transition)
    _set(tr, "model", model)
    _set(tr, "old", old)
    _set(tr, "new", new)
    _set(tr, "result", result)
    _set(tr, "at", at)
    return tr


class Probe(enum.Enum):
    """Where a model's background probe is."""

    #: Waiting in the scheduler's heap until ``due``.
    SCHEDULED = "scheduled"
    #: Running (or queued for a budget slot); rescheduled when it ends.
    RUNNING = "running"
    #: Running, and the config changed meanwhile: probe again as soon as it ends.
    RUNNING_THEN_AGAIN = "running_then_again"


# No weakref slot: a model's state is referenced, never weakly (8 bytes a model).
@attrs.define(eq=False, weakref_slot=False)
class ModelState:
    config: ModelConfig
    #: Frozen and interned (see ``_thresholds.observe``): states are shared between models.
    thresholds: ThresholdState = _START
    last: CheckResult | None = None
    #: The transitions, oldest first: ``None``, one :class:`Transition`, or a list once
    #: there are two (most models only ever have one, ``unknown -> healthy``, and a
    #: one-element list costs 88 bytes, times a hundred thousand models). A
    #: :class:`CheckResult` is a first transition kept as its result alone (see
    #: :meth:`Models._transition`): ``unknown ->`` its status, at its ``checked_at``.
    _history: Transition | list[Transition] | CheckResult | None = None
    #: Loop time until which ``last`` answers on-demand checks (the model's own cache entry).
    fresh_until: float = -math.inf
    #: Loop time of the next probe (``inf`` before start). A heap entry whose time is
    #: not ``due`` any more is stale. While a probe runs (``probe`` not ``SCHEDULED``):
    #: when that probe was due (``inf`` for a model that joined a batch early), what
    #: :attr:`wanted` reads; one slot for the two (8 bytes a model).
    due: float = math.inf
    probe: Probe = Probe.SCHEDULED
    #: Derived from ``config`` by :meth:`Models.configure`.
    key: Key = (0, Target())
    #: ``(deadline, stale_after)``, shared by the models of equal configs (see
    #: ``Models.timing``): one slot for the two (8 bytes a model).
    timing: tuple[float, float] = (0.0, math.inf)
    #: ``time.monotonic()`` when ``last`` was observed (staleness is measured from it).
    observed: float = -math.inf

    def __lt__(self, other: ModelState) -> bool:
        # Breaks ties between heap entries due at the very same time; any order will do.
        return self.config.name < other.config.name

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def wanted(self) -> float:
        """When the running probe was due (``inf`` when none runs)."""
        return self.due if self.probe is not Probe.SCHEDULED else math.inf

    @property
    def deadline(self) -> float:
        """Seconds the monitor gives one check of this model before cutting it."""
        return self.timing[0]

    @property
    def stale_after(self) -> float:
        """Seconds after which the model's last result no longer makes it ready."""
        return self.timing[1]

    @property
    def history(self) -> tuple[Transition, ...]:
        """The model's transitions, oldest first."""
        held = self._history
        if held is None:
            return ()
        if isinstance(held, CheckResult):
            return (self._first_transition(held),)
        if isinstance(held, Transition):
            return (held,)
        return tuple(held)

    def _first_transition(self, result: CheckResult) -> Transition:
        return _new_transition(
            self.config.name, Status.UNKNOWN, result.status, result, result.checked_at
        )

    def remember(self, transition: Transition, size: int) -> None:
        """Append ``transition``, keeping at most ``size`` transitions."""
        held = self._history
        if isinstance(held, CheckResult):
            held = self._history = self._first_transition(held)
        if held is None:
            self._history = transition
        elif isinstance(held, Transition):
            self._history = [held, transition][-size:]
        else:
            held.append(transition)
            if len(held) > size:
                del held[0]  # at most size entries: cheap enough

    @property
    def settings(self) -> MonitorSettings:
        return self.config.monitor

    @property
    def target(self) -> Target:
        return self.config.target

    @property
    def ready(self) -> bool:
        return self.thresholds.ready

    @property
    def probing(self) -> bool:
        return self.probe is not Probe.SCHEDULED

    def owns(self, key: Key) -> bool:
        """``key`` is the model's configured target (its results count toward thresholds)."""
        return key is self.key or key == self.key

    def fresh_ready(self, now: float) -> bool:
        """Ready, on a result not older than ``max_stale`` (``now`` from ``time.monotonic``)."""
        return self.thresholds.ready and now - self.observed <= self.timing[1]

    def is_stale(self, now: float) -> bool:
        return self.last is not None and now - self.observed > self.timing[1]

    def failing(self) -> bool:
        """Not ready, or the last result failed (``unhealthy_period`` applies)."""
        return not self.ready or (self.last is not None and not self.last.status.is_ok)


class Models:
    """The models of a monitor, indexed by name and by strategy instance (spec id)."""

    def __init__(
        self,
        configs: Iterable[ModelConfig],
        *,
        history_size: int,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self.states: dict[str, ModelState] = {}
        self._spec_ids: dict[StrategySpec, int] = {}
        self._spec_counter = itertools.count(1)
        #: spec id -> how many models it checks (a spec is live while it has any).
        self.spec_models: dict[int, int] = {}
        #: spec id -> names of its models (a dict as an ordered set), only for the specs
        #: :meth:`members` was asked about (batch grouping): built by one pass over the
        #: models, then kept up to date. An index of every spec cost a dict entry a
        #: model (~40 bytes at a hundred thousand models) that only batches use.
        self._members: dict[int, dict[str, None]] = {}
        #: (spec id, settings) -> (deadline, stale_after): models with equal configs share
        #: the two floats (24 bytes each a model otherwise). Emptied by each reload.
        self.timing: dict[tuple[int, MonitorSettings], tuple[float, float]] = {}
        #: Own keys of models checked under another name upstream (``upstream_model``).
        self._mapped: dict[Key, ModelState] = {}
        self.listeners: list[TransitionListener] = []
        #: ``observe``'s memo: (id(state), id(status), success_threshold,
        #: failure_threshold) -> (state, next state).
        self._after: dict[tuple[int, int, int, int], tuple[ThresholdState, ThresholdState]] = {}
        self._history_size = history_size
        self._spawn = spawn
        for mc in configs:
            self.add(mc)

    def count_fresh_ready(self, now: float) -> int:
        """How many models are :meth:`ModelState.fresh_ready` at ``now`` (monotonic).

        Without a call per model: ``Monitor.stats`` (metrics scrapes, the benchmarks)
        counts a hundred thousand models in the event loop, and probes wait meanwhile.
        """
        ready = Readiness.READY
        return sum(
            1
            for st in self.states.values()
            if st.thresholds.readiness is ready and now - st.observed <= st.timing[1]
        )

    def get(self, model: str) -> ModelState:
        try:
            return self.states[model]
        except KeyError:
            raise KeyError(f"unknown model {model!r}") from None

    def add(self, mc: ModelConfig) -> ModelState:
        st = ModelState(config=mc)
        self.states[mc.name] = st
        self.configure(st, mc)
        return st

    def configure(self, st: ModelState, mc: ModelConfig) -> None:
        """Point ``st`` at ``mc``: its key, deadline and place in the spec index."""
        st.config = mc
        spec_id = self._spec_ids.get(mc.check)
        if spec_id is None:
            spec_id = self._spec_ids[mc.check] = next(self._spec_counter)
        if self._mapped.get(st.key) is st:
            del self._mapped[st.key]
        st.key = (spec_id, mc.target)
        if mc.upstream_model is not None:
            self._mapped[st.key] = st
        timing = self.timing.get((spec_id, mc.monitor))
        if timing is None:
            deadline = deadline_for(mc.check, mc.monitor)
            timing = self.timing[spec_id, mc.monitor] = (
                deadline,
                mc.monitor.stale_after(deadline),
            )
        st.timing = timing
        self.spec_models[spec_id] = self.spec_models.get(spec_id, 0) + 1
        names = self._members.get(spec_id)
        if names is not None:
            names[mc.name] = None

    def unindex(self, st: ModelState) -> int | None:
        """Take ``st`` out of the spec index (undoes one :meth:`configure`); the spec
        id if nobody uses it any more."""
        spec_id = st.key[0]
        if self._mapped.get(st.key) is st:
            del self._mapped[st.key]
        count = self.spec_models.get(spec_id)
        if count is None:
            return None
        names = self._members.get(spec_id)
        if names is not None:
            names.pop(st.name, None)
        if count > 1:
            self.spec_models[spec_id] = count - 1
            return None
        # Nobody uses the spec any more: a later equal spec is a new instance.
        del self.spec_models[spec_id]
        self._members.pop(spec_id, None)
        self._spec_ids.pop(st.config.check, None)
        return spec_id

    def members(self, spec_id: int) -> dict[str, None]:
        """Names of the models of ``spec_id``, kept up to date from the first call on."""
        names = self._members.get(spec_id)
        if names is None:
            if spec_id not in self.spec_models:
                return {}
            names = self._members[spec_id] = dict.fromkeys(self._scan(spec_id))
        return names

    def names_of(self, spec_id: int) -> list[str]:
        """Names of the models of ``spec_id`` now, without keeping an index (rare callers)."""
        names = self._members.get(spec_id)
        return list(names) if names is not None else self._scan(spec_id)

    def _scan(self, spec_id: int) -> list[str]:
        """Names of the models of ``spec_id``, by one pass over every model."""
        return [name for name, st in self.states.items() if st.key[0] == spec_id]

    def owner(self, key: Key) -> ModelState | None:
        """The model whose own key ``key`` may be, found by its target's name (or, for a
        model named otherwise upstream, by the key); ``owns`` tells whether it is."""
        # A key's hash is a Python call (its target's): skip the lookup when none is mapped.
        st = self._mapped.get(key) if self._mapped else None
        if st is not None or key[1].model is None:
            return st
        return self.states.get(key[1].model)

    def observe(self, st: ModelState, result: CheckResult, now: float | None = None) -> None:
        """Count ``result`` (of the model's own target) toward its thresholds.

        ``now``: the loop's time (``time.monotonic()``, the clock staleness is measured
        on), passed by callers that read it anyway: the same float object as their
        ``fresh_until`` base, not one more a model.
        """
        if result.error is not None and is_starved(result):  # no call for most results
            # No evidence about the upstream (the checker ran out of loop time): the
            # thresholds and the staleness clock stay where the last real answer left them.
            return
        st.last = result
        st.observed = time.monotonic() if now is None else now
        old = st.thresholds
        status = result.status
        settings = st.config.monitor
        if status is old.status and (
            old.successes == settings.success_threshold
            if old.readiness is Readiness.READY
            else old.failures == settings.failure_threshold
        ):
            # The steady state (most probes): ready and one more equal success, or not
            # ready and one more equal failure, at a count already at its threshold.
            # ``thresholds_after`` would hand back an equal state: nothing changes.
            return
        # The next state, memoized by the identities of the state and status and the
        # thresholds: every model's first result passes here (a hundred thousand at start).
        # The memo holds ``old``, so its id is not reused while its entry lives.
        memo_key = (id(old), id(status), settings.success_threshold, settings.failure_threshold)
        hit = self._after.get(memo_key)
        if hit is not None and hit[0] is old:
            new = hit[1]
        else:
            new = thresholds_after(
                old,
                status,
                success_threshold=settings.success_threshold,
                failure_threshold=settings.failure_threshold,
            )
            if len(self._after) >= _AFTER_MAX:
                self._after.clear()
            self._after[memo_key] = (old, new)
        st.thresholds = new
        if new.status is not old.status:
            self._transition(st, old.status, new.status, result)

    def mark_down(self, st: ModelState, result: CheckResult, now: float) -> None:
        """The model's upstream is down: not ready now, its transition logged quietly."""
        st.last = result
        st.observed = now
        old = st.thresholds.status
        st.thresholds = thresholds_marked_down(
            st.thresholds, Status.UNHEALTHY, failure_threshold=st.settings.failure_threshold
        )
        if old != Status.UNHEALTHY:
            self._transition(st, old, Status.UNHEALTHY, result, quiet=True)

    def _transition(
        self,
        st: ModelState,
        old: Status,
        new: Status,
        result: CheckResult,
        *,
        quiet: bool = False,
    ) -> None:
        at = _now(_UTC)
        checked = result.checked_at
        if checked.tzinfo is _UTC and at - _SAME_MOMENT <= checked <= at:
            # The result's own time, when it is this moment (a check just done here): a
            # datetime less a model (48 bytes, a hundred thousand first transitions).
            # A time from elsewhere (a federated result, another clock) is not reused.
            at = checked
        tr: Transition | None = None
        if (
            st._history is None
            and not self.listeners
            and at is checked
            and old is Status.UNKNOWN
            and new is result.status
            and type(result) is CheckResult
        ):
            # Most models' only transition, kept as its result alone: everything else in
            # it is implied (``ModelState.history`` builds it when asked). 72 bytes and
            # a build less a model, a hundred thousand at start. With listeners it is
            # built, so that they and the history hold the same one.
            st._history = result
        else:
            tr = _new_transition(st.config.name, old, new, result, at)
            if st._history is None:
                st._history = tr
            else:
                st.remember(tr, self._history_size)
        # An outage marks many models at once and logs one line for all of them.
        ok = new is Status.HEALTHY or new is Status.DEGRADED  # is_ok, without a call
        level = logging.DEBUG if quiet else logging.INFO if ok else logging.WARNING
        if log.isEnabledFor(level):  # else not even the arguments (every model's first result)
            log.log(level, "model %r: %s -> %s (%s)", st.name, old.value, new.value, result.detail)
        if tr is None or not self.listeners:
            return
        for listener in list(self.listeners):
            try:
                out = listener(tr)
                if inspect.isawaitable(out):
                    self._spawn(_await_listener(out))
            except Exception:
                log.exception("transition listener %r failed", listener)


async def _await_listener(awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("async transition listener failed")
