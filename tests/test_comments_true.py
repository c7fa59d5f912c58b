"""Regressions for comments that used to promise more than the code kept.

The resolver holds a composite's children under names that start with a NUL
(``"\\x00child:composite#1/0"``), on the promise that no model name can hold one.
A JSON config can spell such a key (``"\\u0000child:..."``): before the loader
checked model names, it loaded and silently hid a model behind a child
(``models=1`` for a two-model config).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from healthkit import ConfigError, HealthKit

#: The holder name of the first child of the first composite instance a resolver builds.
CHILD_HOLDER = "\x00child:composite#1/0"


@pytest.fixture
def two_models(tmp_path: Path) -> Path:
    # json.dumps writes the NUL as the escape "\u0000", as a hand-written file would.
    text = json.dumps(
        {
            "models": {
                "a": {"health_check": {"strategy": "composite", "checks": [{"strategy": "noop"}]}},
                CHILD_HOLDER: {"health_check": {"strategy": "noop"}},
            }
        }
    )
    assert "\\u0000child:composite#1/0" in text
    path = tmp_path / "models.json"
    path.write_text(text)
    return path


async def test_a_model_named_like_a_child_holder_is_never_hidden(two_models: Path) -> None:
    try:
        kit = HealthKit.from_config(two_models)
    except ConfigError as exc:
        # Rejected: the error names the models table and says why.
        assert [issue.path for issue in exc.issues] == ["models"], exc
        assert "printable" in str(exc), exc
        return
    async with kit:
        assert kit.stats().models == 2, kit.stats()
        assert sorted(kit.models) == sorted(["a", CHILD_HOLDER])
