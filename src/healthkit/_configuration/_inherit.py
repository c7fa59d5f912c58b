"""How a model's ``health_check`` inherits the default one.

Same strategy (or none named): every key of the default is inherited, except its
secrets when the model points at another host. Another strategy: only the
monitor settings are. Problems in inherited keys are reported where the user
wrote them, under ``defaults.health_check``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._errors import ConfigIssue
from .._secret import Secret
from .._strategy import StrategySpec
from .._walk import collect
from ._schema import DEFAULT_STRATEGY, MONITOR_KEYS
from ._source import join

__all__ = ["INHERIT_SECRETS", "blame_default", "changed_host", "merge", "secret_keys"]

#: A model's ``health_check`` key (not a strategy or monitor key): send the default's
#: secrets even though the model points at another host.
INHERIT_SECRETS = "inherit_secrets"
#: Keys naming the upstream a strategy talks to; a model changing its host does not
#: inherit the default's secrets (see ``merge``).
_TARGET_KEYS = ("base_url", "target", "host")


def _host_of(key: str, value: Any) -> str | None:
    """The host a target key points at, lower-cased; ``None`` when it cannot tell."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if key == "base_url":
        try:
            return urllib.parse.urlsplit(text).hostname
        except ValueError:
            return None
    if "://" in text:  # a gRPC target such as dns:///host:port
        text = text.split("://", 1)[1].lstrip("/")
    elif ":" in text and text.split(":", 1)[0] in ("dns", "ipv4", "ipv6", "unix", "vsock"):
        text = text.split(":", 1)[1]
    host, sep, port = text.rpartition(":")
    return host if sep and port.isdigit() else text


def changed_host(default_raw: Mapping[str, Any], model_raw: Mapping[str, Any]) -> str | None:
    """The first target key the model points at another host than the default, if any."""
    for key in _TARGET_KEYS:
        if key in model_raw and key in default_raw:
            old, new = _host_of(key, default_raw[key]), _host_of(key, model_raw[key])
            if old is None or new is None:
                if default_raw[key] != model_raw[key]:
                    return key
            elif old != new:
                return key
    return None


def secret_keys(spec: StrategySpec) -> set[str]:
    """Keys of ``spec``'s config whose values hold a :class:`Secret`."""
    config = spec.config
    if config is None or not attrs.has(type(config)):
        return set()
    return {
        f.alias or f.name
        for f in attrs.fields(type(config))
        if _holds_secret(getattr(config, f.name))
    }


def _holds_secret(value: Any) -> bool:
    # Tables and lists only: a nested record (a composite's child spec) keeps its
    # own secrets, which its own host decides about.
    found = collect(
        value, lambda part: isinstance(part, Secret), stop=lambda part: attrs.has(type(part))
    )
    return bool(found)


def merge(
    default_raw: Mapping[str, Any] | None,
    model_raw: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """A model's ``health_check`` over the default one, and the secret keys it dropped.

    Same strategy (or none named): the default's keys are inherited, except its
    secrets when the model points at another host (``inherit_secrets = true``
    keeps them). Another strategy: only the monitor settings are inherited, since
    the default's strategy keys would mean nothing to it.
    """
    if not default_raw:
        return dict(model_raw), []
    default_name = default_raw.get("strategy", DEFAULT_STRATEGY)
    model_name = model_raw.get("strategy", default_name)
    if model_name != default_name:
        inherited = {k: v for k, v in default_raw.items() if k in MONITOR_KEYS}
        return {**inherited, **model_raw}, []
    dropped = sorted(k for k in secret_keys if k in default_raw and k not in model_raw)
    if (
        not dropped
        or model_raw.get(INHERIT_SECRETS) is True
        or not changed_host(default_raw, model_raw)
    ):
        dropped = []
    inherited = {k: v for k, v in default_raw.items() if k not in dropped}
    return {**inherited, **model_raw}, dropped


def dropped_notice(hc_path: str, key: str | None, dropped: list[str]) -> ConfigIssue:
    """The notice that a model does not inherit the default's secrets ``dropped``."""
    one = len(dropped) == 1
    return ConfigIssue(
        hc_path,
        f"{key} points at another host than the default's, so the default's "
        f"secret {', '.join(repr(k) for k in dropped)} {'is' if one else 'are'} "
        f"not sent there; set {INHERIT_SECRETS} = true to send "
        f"{'it' if one else 'them'}",
    )


def blame_default(
    issues: list[ConfigIssue],
    start: int,
    hc_path: str,
    default_hc: Mapping[str, Any],
    own: Mapping[str, Any],
) -> None:
    """Put a model's issues about keys it inherited under ``defaults.health_check``.

    The user wrote those keys once, in the default; repeating them under every
    model path (that the user never wrote) only buries the message.
    """
    if default_hc.get("strategy", DEFAULT_STRATEGY) != own.get(
        "strategy", default_hc.get("strategy", DEFAULT_STRATEGY)
    ):
        inherited = {k for k in default_hc if k in MONITOR_KEYS and k not in own}
    else:
        inherited = {k for k in default_hc if k not in own}
    prefix = hc_path + "."
    for index in range(start, len(issues)):
        issue = issues[index]
        if not issue.path.startswith(prefix):
            continue
        rest = issue.path[len(prefix) :]
        key = re.split(r"[.\[]", rest, maxsplit=1)[0]
        if key in inherited:
            issues[index] = ConfigIssue(join("defaults.health_check", rest), issue.message)
