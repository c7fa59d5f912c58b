"""healthkit strategy ``tcp``: can a TCP (optionally TLS) connection be made, and does it answer?

Installed, it registers through the ``healthkit`` entry point; use it by name::

    [models.alpha.health_check]
    strategy = "tcp"
    host = "predictor"
    port = 8080
"""

from ._config import TcpConfig
from ._strategy import TcpStrategy

__all__ = ["TcpConfig", "TcpStrategy"]
