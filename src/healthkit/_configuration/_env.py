"""``${VAR}`` interpolation: values from the environment, and what they cause.

A value taken from the environment is a secret wherever it lands (a token in a
query string, say), so every one is recorded for the redactor. An unset variable
is reported once, at its path; what its guessed value then caused is not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigIssue
from ._source import join

__all__ = ["UNSET", "after_env_errors", "interpolate"]

#: How every message about an unset variable begins.
UNSET = "environment variable"
_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, path: str, issues: list[ConfigIssue], found: set[str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``.

    Values taken from the environment are added to ``found``: they are secrets
    wherever they land (a token in a query string, say).
    """
    if isinstance(value, str):
        if "$" not in value:
            return value

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            env = os.environ.get(name)
            if env is not None:
                found.add(env)
                return env
            if default is not None:
                return default
            issues.append(ConfigIssue(path, f"{UNSET} {name!r} is not set"))
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, join(path, str(k)), issues, found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [interpolate(v, join(path, i), issues, found) for i, v in enumerate(value)]
    return value


def after_env_errors(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """Drop what an unset ``${VAR}`` caused: its value is a guess, so only that is reported."""
    unset = {i.path for i in issues if i.message.startswith(UNSET)}
    if not unset:
        return issues

    def related(path: str) -> bool:
        for env_path in unset:
            if path == env_path or path.startswith((env_path + ".", env_path + "[")):
                return True
            if path in ("models", "defaults") or path.endswith("health_check"):
                continue  # a table's own issues are not about this value
            if path and env_path.startswith((path + ".", path + "[")):
                return True
        return False

    return [i for i in issues if i.message.startswith(UNSET) or not related(i.path)]
