"""Ray Serve integration: per-model readiness in every replica, one check per model per period.

One :class:`SharedMonitor` actor per ``name`` in the cluster probes the
upstream; every replica reads a local snapshot of it, refreshed in the
background::

    from ray import serve
    import healthkit.ray

    @serve.deployment(num_replicas=4)
    class Transformer:
        async def __init__(self) -> None:
            self.health = healthkit.ray.ReplicaHealth("healthkit.toml", name="transformer")
            await self.health.astart()

        def check_health(self) -> None:
            self.health.check_health()

Needs the ``ray`` extra (``pip install 'model-healthkit[ray]'``). Importing this
module does not import Ray; creating a :class:`ReplicaHealth` does. See
``docs/ray.md``.
"""

from __future__ import annotations

from ._actor import SharedMonitor
from ._replica import ReplicaHealth

__all__ = ["ReplicaHealth", "SharedMonitor"]
