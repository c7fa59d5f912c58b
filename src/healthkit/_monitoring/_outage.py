"""Outage detection per strategy instance (one upstream), like Envoy's outlier detection.

Pure: no clock and no asyncio. The caller passes each upstream call's outcome
with the time and how long the event loop was starved during the call, and
acts on the returned :class:`Change`.

The rule (see ``docs/reliability.md``): an instance is marked down after
consecutive *transport failures* (the upstream did not answer at all) that

* number at least the model's ``failure_threshold``,
* come from at least ``min(MIN_TARGETS, models of the instance)`` distinct targets,
* are spread over at least one ``timeout`` (one stall of the checker cuts every
  check in flight at the same instant: that is one piece of evidence, not many),

where a timeout counts only if the event loop was available to the check for
most of its deadline (a checker starved of CPU cuts healthy checks: that says
nothing about the upstream). Any answer, even a 503 for one model, resets the run.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs

from .._result import CheckResult, Target
from .._status import Status

__all__ = [
    "MIN_TARGETS",
    "STARVED",
    "STARVED_SHARE",
    "Breaker",
    "Change",
    "Circuit",
    "OutageDetector",
    "is_starved",
    "is_timeout",
    "is_transport_failure",
    "outage_result",
]

#: Distinct targets (capped at the instance's models) the failures must come from.
MIN_TARGETS = 5
#: A timeout is evidence only if the loop was starved for at most this share of the deadline.
STARVED_SHARE = 0.25
#: ``ErrorInfo.type`` of a result that is no evidence about the upstream: a timeout the
#: checker caused by starving its own event loop (see ``_results._unless_starved``).
STARVED = "CheckerStarved"

#: Error types (exception names) that mean no answer came in time.
_TIMEOUT_ERRORS = frozenset(
    {"TimeoutError", "TimeoutException", "ConnectTimeout", "ReadTimeout", "WriteTimeout"}
)
#: Error types that mean the upstream did not answer at all.
_TRANSPORT_ERRORS = _TIMEOUT_ERRORS | {
    "PoolTimeout",
    "ConnectError",
    "ReadError",
    "WriteError",
    "NetworkError",
    "RemoteProtocolError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "BrokenPipeError",
}


def is_transport_failure(result: CheckResult) -> bool:
    """The upstream did not answer (timeout, refused, reset), as opposed to answering "no".

    A plain 503 of one model says nothing about its siblings; a timeout or a refused
    connection says the same about every model behind that upstream.
    """
    error = result.error
    if error is None or result.status.is_ok:
        return False
    if error.type in _TRANSPORT_ERRORS:
        return True
    # gRPC: the status code leads the message (see the grpc strategy).
    return error.type == "AioRpcError" and error.message.startswith(
        ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    )


def is_starved(result: CheckResult) -> bool:
    """``result`` is a :data:`STARVED` ``unknown``: no evidence about the upstream either way."""
    return result.error is not None and result.error.type == STARVED


def is_timeout(result: CheckResult) -> bool:
    """A transport failure that only says "no answer in time" (a starved checker can cause it)."""
    error = result.error
    if error is None or result.status.is_ok:
        return False
    if error.type in _TIMEOUT_ERRORS:
        return True
    return error.type == "AioRpcError" and error.message.startswith("DEADLINE_EXCEEDED")


class Circuit(enum.Enum):
    """An instance's verdict: ``CLOSED`` (believed up), ``OPEN`` (down), ``HALF_OPEN``
    (down, and the one probe allowed while down is out)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Change(enum.Enum):
    """What one outcome did to the instance's circuit."""

    NONE = "none"
    TRIPPED = "tripped"
    RECOVERED = "recovered"


@attrs.define(eq=False)
class Breaker:
    """The outage state of one strategy instance (one spec id)."""

    circuit: Circuit = Circuit.CLOSED
    #: The current run of consecutive transport failures counted as evidence.
    failures: int = 0
    #: Distinct targets among them (kept only up to the number needed).
    targets: set[Target] = attrs.field(factory=set)
    #: When the first of them was observed (the caller's clock).
    since: float = 0.0
    #: The check that proved the upstream down, and the count that tripped it.
    proof: CheckResult | None = None
    tripped_after: int = 0
    #: Models whose probes wait for the circuit to close.
    parked: set[str] = attrs.field(factory=set)

    @property
    def down(self) -> bool:
        return self.circuit is not Circuit.CLOSED

    def reset_run(self) -> None:
        self.failures = 0
        self.targets.clear()


class OutageDetector:
    """One :class:`Breaker` per strategy instance, made on its first transport failure."""

    def __init__(self) -> None:
        self._breakers: dict[int, Breaker] = {}
        #: The same dict, read-only by convention: empty (no instance has failed yet) is
        #: the common case, and the probe path skips every other question then.
        self.breakers: Mapping[int, Breaker] = self._breakers

    def get(self, spec_id: int) -> Breaker | None:
        return self._breakers.get(spec_id)

    def is_down(self, spec_id: int) -> bool:
        breaker = self._breakers.get(spec_id)
        return breaker is not None and breaker.down

    def may_start(self, spec_id: int) -> bool:
        """A new check may start: the instance is up, or down with no probe out."""
        breaker = self._breakers.get(spec_id)
        return breaker is None or breaker.circuit is not Circuit.HALF_OPEN

    def take_probe(self, spec_id: int) -> Breaker | None:
        """Take the half-open probe if the instance is down (give it back: :meth:`probe_done`)."""
        breaker = self._breakers.get(spec_id)
        if breaker is None or not breaker.down:
            return None
        breaker.circuit = Circuit.HALF_OPEN
        return breaker

    @staticmethod
    def probe_done(breaker: Breaker) -> None:
        if breaker.circuit is Circuit.HALF_OPEN:
            breaker.circuit = Circuit.OPEN

    def forget(self, spec_id: int) -> None:
        self._breakers.pop(spec_id, None)

    def account(
        self,
        spec_id: int,
        result: CheckResult,
        *,
        targets: Iterable[Target],
        threshold: int,
        models: int,
        timeout: float,
        deadline: float,
        starved: float,
        now: float,
    ) -> Change:
        """Feed one upstream call's outcome (``result``, for ``targets``) to the instance.

        ``models`` is the instance's number of models, ``timeout`` the span the run
        must cover, ``starved`` the seconds the event loop could not run during a
        call whose hard cap was ``deadline``, and ``now`` the time it ended.
        """
        if is_starved(result):
            return Change.NONE  # no evidence either way: neither counts nor resets the run
        breaker = self._breakers.get(spec_id)
        if not is_transport_failure(result):
            if breaker is None:
                return Change.NONE
            breaker.reset_run()
            if not breaker.down:
                return Change.NONE
            breaker.circuit = Circuit.CLOSED
            return Change.RECOVERED
        if is_timeout(result) and starved > STARVED_SHARE * deadline:
            return Change.NONE  # the checker, not the upstream, ran out of time
        if breaker is None:
            breaker = self._breakers[spec_id] = Breaker()
        if breaker.failures == 0:
            breaker.since = now
        breaker.failures += 1
        needed = min(MIN_TARGETS, max(1, models))
        for target in targets:
            if len(breaker.targets) >= needed:
                break
            breaker.targets.add(target)
        if (
            breaker.down
            or breaker.failures < threshold
            or len(breaker.targets) < needed
            or now - breaker.since < timeout
        ):
            return Change.NONE
        breaker.circuit = Circuit.OPEN
        breaker.proof = result
        breaker.tripped_after = breaker.failures
        return Change.TRIPPED


def outage_result(strategy: str, target: Target, breaker: Breaker) -> CheckResult:
    """What a model of a marked-down instance answers: the proof, in words."""
    proof = breaker.proof
    assert proof is not None
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=strategy,
        target=target,
        detail=(
            f"upstream unreachable: {breaker.tripped_after} consecutive checks of this "
            f"{strategy} instance failed to reach it (last: {proof.target}: {proof.detail})"
        ),
        error=proof.error,
    )
