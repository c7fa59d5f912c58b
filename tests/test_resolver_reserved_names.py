"""Names starting with NUL are the resolver's own (composite children, staged specs).

``acquire()`` refused them; ``apply()`` trusted its caller, so a model named
``"\\x00child:..."`` could take over an internal holder, or be dropped from the
models ``apply`` manages (it filters those names out as internal).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from healthkit import ResolverStats, StrategyRegistry
from healthkit._resolver import Resolver

SRC = Path(__file__).resolve().parents[1] / "src" / "healthkit"


@pytest.mark.parametrize("name", ["\x00child:x", "\x00staged/alpha", "\x00"])
async def test_apply_refuses_a_model_name_starting_with_nul(
    rec_registry: StrategyRegistry, rec_tools: Any, recorder: Any, name: str
) -> None:
    resolver = Resolver(rec_registry)
    await resolver.apply({"alpha": rec_tools.spec(1)})
    with pytest.raises(ValueError, match="NUL"):
        await resolver.apply({"alpha": rec_tools.spec(1), name: rec_tools.spec(2)})
    # Refused before anything was touched: the previous models stay as they were.
    assert resolver.stats() == ResolverStats(models=1, instances=1)
    assert len(recorder.created) == 1
    await resolver.aclose()


@pytest.mark.parametrize("name", ["\x00child:x", "\x00other"])
def test_acquire_refuses_every_name_starting_with_nul(
    rec_registry: StrategyRegistry, rec_tools: Any, name: str
) -> None:
    with pytest.raises(ValueError, match="NUL"):
        Resolver(rec_registry).acquire(name, rec_tools.spec(1))


def _bare_loggers() -> list[str]:
    """Modules whose module-level logger is the bare ``healthkit`` one."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "getLogger"
                and [ast.literal_eval(a) for a in node.value.args] == ["healthkit"]
            ):
                found.append(path.relative_to(SRC).as_posix())
    return found


def test_every_module_logs_on_its_own_child_logger() -> None:
    # `healthkit` is the tree users configure; each module logs on a named child of it
    # (docs/logging.md lists them) so that one part can be filtered.
    assert _bare_loggers() == []
