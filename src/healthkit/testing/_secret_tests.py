"""The conformance test of secrets: none shows in reprs, results, config errors or logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .._config import describe_spec
from .._errors import ConfigError
from .._guard import guarded_check
from .._registry import StrategyRegistry
from .._result import CheckResult, Target
from .._secret import Secret
from .._url import SecretUrl
from .._walk import collect
from ._suite import BadConfig, SuiteBase, run_scenario

__all__ = ["SecretTests", "has_secret_fields"]

#: Shorter secrets would turn up by chance in any text.
_MIN_SECRET_LEN = 6


def _texts_of(result: CheckResult) -> list[str]:
    texts = [repr(result), str(result), result.detail, json.dumps(result.to_dict())]
    if result.error is not None:
        texts.append(result.error.message)
    for child in result.children:
        texts.extend(_texts_of(child))
    return texts


def has_secret_fields(config_class: type) -> bool:
    """Whether ``config_class`` has a field that can hold a ``Secret`` or ``SecretUrl``.

    Looks through the field types: nested records, ``tuple[Secret, ...]``,
    ``Secret | None`` (healthkit's one walk over configs, which also walks
    classes). It decides whether the ``secrets`` fixture must list something.
    """
    return bool(collect(config_class, lambda tp: tp in (Secret, SecretUrl)))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception:
            self.texts.append(repr(record.msg))


class SecretTests(SuiteBase):
    """Secret values of the configs never appear anywhere a user or a log could see them."""

    def test_secrets_never_appear(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        bad_configs: Sequence[BadConfig],
        target: Target,
        secrets: Sequence[str],
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        config_class = registry.get(self.strategy).config_class
        if not secrets:
            assert not has_secret_fields(config_class), (
                f"{config_class.__name__} has Secret fields: list the secret values of "
                "valid_config in the secrets fixture"
            )
        for secret in secrets:
            assert len(secret) >= _MIN_SECRET_LEN, f"secret {secret!r} is too short to search for"

        texts: list[str] = []
        configs = [valid_config, failing_config, unresponsive_config]
        specs = [self.load(registry, c) for c in configs if c is not None]
        for spec in specs:
            texts += [repr(spec), str(spec), repr(spec.config), json.dumps(describe_spec(spec))]
        for case in bad_configs:
            try:
                self.load(registry, case.apply(valid_config))
            except ConfigError as exc:
                texts.append(str(exc))

        collect = _Collect()
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(collect)
        root.setLevel(logging.DEBUG)

        async def scenario() -> None:
            resolver = self._resolver(registry)
            try:
                for index, spec in enumerate(specs):
                    strategy = resolver.acquire(f"m{index}", spec)
                    texts.extend([repr(strategy), str(strategy)])
                    result = await guarded_check(
                        strategy, self.strategy, target, timeout=self.short_timeout
                    )
                    texts.extend(_texts_of(result))
            finally:
                await resolver.aclose()

        try:
            run_scenario(scenario)
        finally:
            root.removeHandler(collect)
            root.setLevel(old_level)
        texts.extend(collect.texts)
        found = [
            f"secret #{n} in: {text[:300]}"
            for n, secret in enumerate(secrets)
            for text in texts
            if secret in text
        ]
        assert not found, "secrets leaked:\n" + "\n".join(found)
