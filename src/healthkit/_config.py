"""Loading and validating configs: files and dicts in, frozen records out.

The facade the rest of healthkit imports from; the layers live in
:mod:`healthkit._configuration` (reading and limits, ``${VAR}`` interpolation,
the generic structuring engine, the schema, inheritance, rendering).
"""

from __future__ import annotations

from ._configuration._load import load_config, parse_spec
from ._configuration._render import describe_spec
from ._configuration._schema import (
    DEFAULT_STRATEGY,
    MAX_COMPOSITE_DEPTH,
    ModelConfig,
    ServerConfig,
)
from ._configuration._source import MAX_ALIAS_EXPANSION, MAX_DEPTH

__all__ = [
    "DEFAULT_STRATEGY",
    "MAX_ALIAS_EXPANSION",
    "MAX_COMPOSITE_DEPTH",
    "MAX_DEPTH",
    "ModelConfig",
    "ServerConfig",
    "describe_spec",
    "load_config",
    "parse_spec",
]
