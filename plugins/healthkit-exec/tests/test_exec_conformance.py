"""``exec`` passes healthkit's conformance suite, installed through its entry point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from healthkit.testing import BadConfig, StrategyConformance

TOKEN = "exec-conformance-token"


class TestExecConformance(StrategyConformance):
    strategy = "exec"

    @pytest.fixture
    def valid_config(self) -> Mapping[str, Any]:
        # The command prints the secret: the result must mask it.
        return {
            "argv": ["sh", "-c", 'echo "ok, token $EXEC_TOKEN"'],
            "env": {"EXEC_TOKEN": TOKEN},
            "timeout": 5.0,
        }

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [
            BadConfig(
                changes={"argv": "echo hi"}, path="argv", message="never run through a shell"
            ),
            BadConfig(changes={"argv": []}, path="argv", message="must not be empty"),
            BadConfig(changes={"argv": ["sh", 3]}, path="argv", message="item 1"),
            BadConfig(remove=("argv",), path="argv", message="missing required key"),
            BadConfig(changes={"timeout": -1}, path="timeout", message="must be > 0"),
            BadConfig(changes={"pass_env": ["NOT-A-NAME"]}, path="pass_env"),
            BadConfig(
                changes={"env": {"1BAD": "x"}}, path="env", message="bad environment variable"
            ),
            BadConfig(changes={"cwd": "/no/such/dir"}, path="cwd", message="directory not found"),
            BadConfig(changes={"max_processes": 0}, path="max_processes", message="must be >= 1"),
        ]

    @pytest.fixture
    def failing_config(self) -> Mapping[str, Any]:
        return {
            "argv": ["sh", "-c", 'echo "broken $EXEC_TOKEN"; exit 2'],
            "env": {"EXEC_TOKEN": TOKEN},
        }

    @pytest.fixture
    def unresponsive_config(self) -> Mapping[str, Any]:
        return {"argv": ["sh", "-c", "sleep 60 & wait"], "env": {"EXEC_TOKEN": TOKEN}}

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [TOKEN]
