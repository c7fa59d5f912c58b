"""healthkit strategy ``exec``: run a command and map its exit code to a status.

Exit 0 is healthy, 1 degraded, 2 unhealthy, anything else unknown (the
monitoring-plugins convention). The command is an argv list, never a shell.
"""

from ._config import DEFAULT_PASS_ENV, OUTPUT_LIMIT, OUTPUT_SHOWN, ExecConfig
from ._strategy import ExecStrategy

__all__ = ["DEFAULT_PASS_ENV", "OUTPUT_LIMIT", "OUTPUT_SHOWN", "ExecConfig", "ExecStrategy"]
