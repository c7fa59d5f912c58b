"""``HealthKit.reload`` and ``areload`` take a config, a file path or a mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthkit import ConfigError, HealthKit, ServerConfig, StrategyRegistry, load_config


def _toml(path: Path, models: list[str]) -> Path:
    path.write_text(
        "".join(f'[models.{m}.health_check]\nstrategy = "noop"\n' for m in models),
        encoding="utf-8",
    )
    return path


def test_reload_from_a_path(tmp_path: Path) -> None:
    first = _toml(tmp_path / "a.toml", ["alpha"])
    second = _toml(tmp_path / "b.toml", ["alpha", "beta"])
    with HealthKit.from_config(first) as kit:
        kit.check_all()
        plan = kit.reload(second)
        assert kit.models == ["alpha", "beta"]
        assert isinstance(kit.config, ServerConfig)
        assert plan.added == ("beta",)
        assert plan.unchanged == ("alpha",)
        assert kit.check("beta").status.value == "healthy"
        kit.reload(str(first))  # a str path too
        assert kit.models == ["alpha"]


async def test_areload_from_a_mapping_and_a_config(tmp_path: Path) -> None:
    registry = StrategyRegistry()
    config = load_config(_toml(tmp_path / "a.toml", ["alpha"]), registry=registry)
    async with HealthKit(config, registry=registry) as kit:
        await kit.areload({"models": {"gamma": {"health_check": {"strategy": "noop"}}}})
        assert kit.models == ["gamma"]
        await kit.areload(config)
        assert kit.models == ["alpha"]


def test_reload_of_a_bad_file_raises_and_changes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.alpha.health_check]\nstrategy = "nope"\n', encoding="utf-8")
    with HealthKit.from_config(_toml(tmp_path / "a.toml", ["alpha", "beta"])) as kit:
        before = kit.config
        with pytest.raises(ConfigError) as info:
            kit.reload(bad)
        assert "models.alpha.health_check" in str(info.value)
        assert kit.config is before
        assert kit.models == ["alpha", "beta"]
