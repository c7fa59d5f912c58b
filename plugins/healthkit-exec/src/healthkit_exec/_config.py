"""Config of the ``exec`` strategy."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from healthkit import Secret
from healthkit import validators as v
from healthkit.toolkit import FrozenMap

__all__ = ["DEFAULT_PASS_ENV", "OUTPUT_LIMIT", "OUTPUT_SHOWN", "ExecConfig"]

#: Environment variables passed to the command unless ``pass_env`` says otherwise.
DEFAULT_PASS_ENV = ("LANG", "LC_ALL", "PATH")
#: Bytes of output (stdout and stderr together) kept while the command runs: its last
#: ones, from which the result's excerpt is made (the rest is read and dropped).
OUTPUT_LIMIT = 4096
#: Characters of output a result shows: the end of it, where a failure is usually told.
OUTPUT_SHOWN = 200

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_PATTERN = re.compile(r"^[A-Za-z0-9_*?]+$")


def _argv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(
            "must be a list of strings (the program and its arguments); "
            "commands never run through a shell"
        )
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of strings, got {value!r}")
    if not value:
        raise ValueError("must not be empty")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise TypeError(f"item {index}: expected a string, got {item!r}")
        if "\x00" in item:
            raise ValueError(f"item {index}: must not contain NUL")
    if not value[0]:
        raise ValueError("the program (item 0) must not be empty")
    return tuple(value)


def _pass_env(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of variable names, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not _ENV_PATTERN.match(item):
            raise ValueError(
                "expected variable names or patterns (letters, digits, '_', '*', '?'), "
                f"got {item!r}"
            )
    # Order and repeats do not matter: equal allow-lists must make equal configs.
    return tuple(sorted(set(value)))


def _env(value: Any) -> FrozenMap[str, Secret]:
    if isinstance(value, FrozenMap) and all(isinstance(x, Secret) for x in value.values()):
        return value
    if not isinstance(value, Mapping):
        raise TypeError("expected a table of variable names to string values")
    out: dict[str, Secret] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ValueError(f"bad environment variable name {name!r}")
        if isinstance(raw, Secret):
            out[name] = raw
        elif isinstance(raw, str):
            out[name] = Secret(raw)
        else:
            # Never echo the value: it may be a token.
            raise TypeError(f"{name}: expected a string value")
    return FrozenMap(out)


def _cwd(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a directory path, got {value!r}")
    if not os.path.isdir(value):
        raise ValueError(f"directory not found: {value!r}")
    return value


@attrs.frozen(kw_only=True)
class ExecConfig:
    """Config of the ``exec`` strategy (see ``docs/plugins/exec.md``)."""

    #: The program and its arguments, run directly (never through a shell).
    argv: tuple[str, ...] = attrs.field(converter=_argv)
    #: Seconds the command may run; then its whole process group is killed.
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))
    #: Variables of healthkit's own environment the command sees (names or ``*`` patterns);
    #: nothing else is passed through.
    pass_env: tuple[str, ...] = attrs.field(default=DEFAULT_PASS_ENV, converter=_pass_env)
    #: Variables set for the command; the values are secret and masked in its output.
    env: FrozenMap[str, Secret] = attrs.field(factory=FrozenMap, converter=_env)
    #: Working directory; default: healthkit's own.
    cwd: str | None = attrs.field(default=None, converter=_cwd)
    #: Commands of this config that may run at once; further checks wait their turn.
    max_processes: int = attrs.field(default=8, validator=v.ge(1))
