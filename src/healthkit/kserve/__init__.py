"""KServe integration: per-model predictor health checks in a real ``kserve.ModelServer``.

One call, after creating the server and before starting it::

    import kserve
    import healthkit.kserve

    server = kserve.ModelServer()
    healthkit.kserve.install(server, "healthkit.toml")
    server.start(models)

Needs the ``kserve`` extra (``pip install 'model-healthkit[kserve]'``). Importing this
module does not import ``kserve`` (which parses ``sys.argv`` on import). See
``docs/kserve.md``.
"""

from __future__ import annotations

from ._adapter import KServeHealth, install

__all__ = ["KServeHealth", "install"]
