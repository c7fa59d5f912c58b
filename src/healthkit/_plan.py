"""The record of :meth:`Resolver.plan <healthkit.Resolver.plan>`: one instance a resolver
would create.

A module of its own, imported by ``plan()`` (``healthkit validate``, ``serve``): a
one-shot ``healthkit check`` never plans and does not pay for defining the class.
"""

from __future__ import annotations

import attrs

from ._strategy import StrategySpec

__all__ = ["PlannedInstance"]


@attrs.frozen(kw_only=True)
class PlannedInstance:
    """One strategy instance a resolver would create for a config, and who would hold it."""

    id: int
    spec: StrategySpec
    #: Models that hold this instance directly.
    models: tuple[str, ...]
    #: Ids of composite instances that hold this one as a child.
    used_by: tuple[int, ...]
    #: Ids of this instance's own children, in config order.
    children: tuple[int, ...]
