"""The generic engine: raw tables in, attrs records out, every issue with its path.

It knows attrs classes, the types their fields are annotated with, and the
converters and validators of those fields; nothing about strategies (the schema
subclasses :class:`Structurer` for those). Every problem is recorded with its
dotted path and the walk goes on, so a user fixes a config in one pass.

Only attrs' public API is used: a record is built by calling its class, which
runs its converters and validators as attrs defines them. When that fails, each
field's converter and validator are tried alone, on a one-field class made with
``attrs.make_class`` (see :meth:`Structurer._probe`), to tell which fields are
wrong; what no field explains is a cross-field problem (``__attrs_post_init__``).
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Union

import attrs

from .._errors import ConfigIssue
from .._frozen import FrozenMap
from .._secret import Secret
from .._url import SecretUrl
from ._source import join

__all__ = ["NO_PLACEHOLDER", "Invalid", "Structurer", "type_name", "unknown_key"]


def unknown_key(path: str, key: str, valid: Iterable[str], hint: str | None = None) -> ConfigIssue:
    """The issue for ``key`` that is not one of ``valid``: a close match, or the list."""
    import difflib  # an error path only: a check of a valid config never loads it

    listed = sorted(set(valid))
    close = difflib.get_close_matches(key, listed, n=1, cutoff=0.6)
    if hint:
        message = f"unknown key; {hint}"
    elif close:
        message = f"unknown key; did you mean {close[0]!r}?"
    else:
        message = f"unknown key; valid keys: {', '.join(listed) or '(none)'}"
    return ConfigIssue(join(path, key), message)


def type_name(tp: Any) -> str:
    """``tp`` in the words of a message: ``an integer``, ``a table``, ``one of 'a', 'b'``."""
    if tp is type(None):
        return "null"
    if tp is Secret:
        return "a string"
    if tp is SecretUrl:
        return "a URL"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin in (dict, Mapping, FrozenMap) or tp in (dict, Mapping):
        return "a table"
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _type_hints(cls: type[Any]) -> dict[str, Any]:
    """Field types of ``cls``; a plugin's unresolvable annotation counts as ``Any``.

    A config class may annotate with names imported under ``TYPE_CHECKING`` only;
    that must not crash loading, its converters and validators still apply.
    """
    try:
        return typing.get_type_hints(cls)
    except Exception:  # NameError, TypeError: anything a foreign annotation can raise
        hints: dict[str, Any] = {}
        for f in attrs.fields(cls):
            hints[f.name] = Any if f.type is None or isinstance(f.type, str) else f.type
        return hints


class _Plan:
    """How to structure one attrs class: computed once per class and load. (A plain
    class: defining an attrs class costs every one-shot process about a millisecond.)"""

    __slots__ = ("fields", "keys", "probes")

    def __init__(self, *, fields: Mapping[str, tuple[attrs.Attribute[Any], Any]]) -> None:
        #: config key -> (attrs field, its type)
        self.fields = fields
        self.keys = frozenset(fields)
        #: config key -> a class of that one field (made when a record of ``cls`` fails)
        self.probes: dict[str, type[Any]] = {}


def _freeze(value: Any) -> Any:
    """Lists and tables of a field typed ``Any`` become tuples and ``FrozenMap``\\ s.

    A config is hashable (equal configs share one instance), so a value kept as
    it was loaded must be too.
    """
    if isinstance(value, Mapping):
        return FrozenMap({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return value


NO_PLACEHOLDER: Any = object()


class Invalid(Exception):
    """Internal: the value at a path could not be structured (issues already recorded).

    ``placeholder`` stands in for the value in cross-field checks, so a bad child
    does not hide a bad ``quorum``: a list of specs keeps its length.
    """

    def __init__(self, placeholder: Any = NO_PLACEHOLDER) -> None:
        super().__init__()
        self.placeholder = placeholder


class Structurer:
    """Structures raw values into typed ones, recording every issue in ``issues``."""

    def __init__(self, plans: dict[type[Any], _Plan] | None = None) -> None:
        self.issues: list[ConfigIssue] = []
        self.plans: dict[type[Any], _Plan] = {} if plans is None else plans

    def fail(self, path: str, message: str) -> Invalid:
        self.issues.append(ConfigIssue(path, message))
        return Invalid()

    def plan(self, cls: type[Any]) -> _Plan:
        found = self.plans.get(cls)
        if found is None:
            hints = _type_hints(cls)
            fields = {
                (f.alias or f.name): (f, hints.get(f.name, Any))
                for f in attrs.fields(cls)
                if f.init
            }
            found = self.plans[cls] = _Plan(fields=fields)
        return found

    def probe(self) -> Structurer:
        """A copy that records its own issues: for trying one branch of a union."""
        other = copy.copy(self)
        other.issues = []
        return other

    def placeholder(self, item_tp: Any, items: list[Any]) -> Any:
        """What stands in for a list of ``item_tp`` some of whose items are bad.

        ``items`` holds :data:`NO_PLACEHOLDER` where an item was bad. None by
        default; the schema keeps a list of specs at its length.
        """
        return NO_PLACEHOLDER

    # -- values ---------------------------------------------------------------

    def value(self, tp: Any, raw: Any, path: str) -> Any:
        if tp is Any or tp is object:
            return _freeze(raw)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (Union, types.UnionType):
            if raw is None and type(None) in args:
                return None
            candidates = [a for a in args if a is not type(None)]
            if len(candidates) == 1:
                return self.value(candidates[0], raw, path)
            for cand in candidates:
                try:
                    return self.probe().value(cand, raw, path)
                except Invalid:
                    continue
            raise self.fail(path, f"expected {type_name(tp)}, got {raw!r}")
        if origin is Literal:
            if raw in args:
                return raw
            raise self.fail(path, f"must be one of {', '.join(repr(a) for a in args)}, got {raw!r}")
        if origin in (tuple, list):
            if not isinstance(raw, list | tuple):
                raise self.fail(path, f"expected a list, got {raw!r}")
            item_tp = args[0] if args else Any
            out, bad = [], False
            for i, item in enumerate(raw):
                try:
                    out.append(self.value(item_tp, item, join(path, i)))
                except Invalid:
                    bad = True
                    out.append(NO_PLACEHOLDER)
            if bad:
                # Same length, so cross-field checks (quorum <= len) still run.
                raise Invalid(self.placeholder(item_tp, out))
            return tuple(out)
        if origin in (dict, Mapping, FrozenMap, typing.Mapping) or tp in (dict, Mapping):
            if not isinstance(raw, Mapping):
                raise self.fail(path, f"expected a table, got {raw!r}")
            val_tp = args[1] if len(args) == 2 else Any
            result, bad = {}, False
            for k, item in raw.items():
                if not isinstance(k, str):
                    self.fail(path, f"keys must be strings, got {k!r}")
                    bad = True
                    continue
                try:
                    result[k] = self.value(val_tp, item, join(path, k))
                except Invalid:
                    bad = True
            if bad:
                raise Invalid()
            return FrozenMap(result)
        if tp is Secret:
            if isinstance(raw, Secret):
                return raw
            if not isinstance(raw, str):
                raise self.fail(path, "expected a string")  # never echo a secret value
            return Secret(raw)
        if tp is bool:
            if not isinstance(raw, bool):
                raise self.fail(path, f"expected a boolean, got {raw!r}")
            return raw
        if tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise self.fail(path, f"expected an integer, got {raw!r}")
            return raw
        if tp is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise self.fail(path, f"expected a number, got {raw!r}")
            return float(raw)
        if tp is str:
            if not isinstance(raw, str):
                raise self.fail(path, f"expected a string, got {raw!r}")
            return raw
        if tp is type(None):
            if raw is not None:
                raise self.fail(path, f"expected null, got {raw!r}")
            return None
        if isinstance(tp, type) and attrs.has(tp):
            return self.record(tp, raw, path)
        if isinstance(tp, type):
            if isinstance(raw, tp):
                return raw
            raise self.fail(path, f"expected {type_name(tp)}, got {raw!r}")
        return _freeze(raw)

    # -- records --------------------------------------------------------------

    def record(
        self,
        cls: type[Any],
        raw: Any,
        path: str,
        *,
        extra_valid: Iterable[str] = (),
        unknown_hint: Callable[[str], str | None] | None = None,
    ) -> Any:
        """Structure a mapping into attrs class ``cls``, collecting every issue."""
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"expected a table, got {raw!r}")
        plan = self.plan(cls)
        fields = plan.fields
        kwargs: dict[str, Any] = {}
        placeheld: set[str] = set()
        bad = False
        # Whether cls can still be built (with placeholders) to run its cross-field checks.
        buildable = True
        for key in raw:
            if key not in fields:
                hint = unknown_hint(str(key)) if unknown_hint is not None else None
                self.issues.append(unknown_key(path, str(key), [*fields, *extra_valid], hint))
                bad = True
        # Where the issues of each field end: a field's converter and validator are
        # tried later, and their issues go right after its own (the order of fields).
        ends: dict[str, int] = {}
        for key, (field, hint_tp) in fields.items():
            if key not in raw:
                if field.default is attrs.NOTHING:
                    expected = type_name(hint_tp)
                    self.fail(join(path, key), f"missing required key (expected {expected})")
                    bad = True
                    buildable = False
            elif field.converter is not None:
                # A converter owns parsing (and type errors) of its field.
                kwargs[key] = raw[key]
            else:
                try:
                    kwargs[key] = self.value(hint_tp, raw[key], join(path, key))
                except Invalid as exc:
                    bad = True
                    if exc.placeholder is NO_PLACEHOLDER:
                        buildable = False
                    else:
                        kwargs[key] = exc.placeholder
                        placeheld.add(key)
            ends[key] = len(self.issues)
        failure: Exception | None = None
        if not bad:
            try:
                return cls(**kwargs)
            except (ValueError, TypeError) as exc:
                failure = exc
        if self._check_fields(plan, kwargs, placeheld, path, ends):
            raise Invalid()
        if failure is None and buildable:
            # Report the cross-field problems too: one pass shows every problem.
            try:
                cls(**kwargs)
            except (ValueError, TypeError) as exc:
                failure = exc
        if failure is not None:
            self._cross_field(fields, path, failure)
        raise Invalid()

    def _check_fields(
        self,
        plan: _Plan,
        kwargs: dict[str, Any],
        skip: set[str],
        path: str,
        ends: Mapping[str, int],
    ) -> bool:
        """Try each field's converter and validator alone; whether any rejected its value.

        An issue found is placed after the issues of its field, so the order is
        that of the fields whichever step found it.
        """
        found: dict[str, ConfigIssue] = {}
        for key, (field, _) in plan.fields.items():
            if key not in kwargs or key in skip:
                continue
            if field.converter is None and field.validator is None:
                continue
            try:
                kwargs[key] = self._probe(plan, key)(kwargs[key])
            except (ValueError, TypeError) as exc:
                found[key] = ConfigIssue(join(path, key), str(exc))
        if not found:
            return False
        first = min(ends.values())
        merged, previous = self.issues[:first], first
        for key, end in ends.items():
            merged.extend(self.issues[previous:end])
            previous = end
            if key in found:
                merged.append(found[key])
        merged.extend(self.issues[previous:])
        self.issues[:] = merged
        return True

    def _probe(self, plan: _Plan, key: str) -> Callable[[Any], Any]:
        """The converter and validator of one field, run by attrs on a one-field class.

        Validators get an instance (of that class) and converters their
        ``attrs.Converter`` options, as attrs defines them; the value returned is
        the converted one.
        """
        probe = plan.probes.get(key)
        if probe is None:
            field = plan.fields[key][0]
            probe = plan.probes[key] = attrs.make_class(
                f"Probe_{field.name}",
                {
                    field.name: attrs.field(
                        converter=field.converter, validator=field.validator, alias=key
                    )
                },
                repr=False,
                eq=False,
            )
        name = plan.fields[key][0].name

        def run(value: Any) -> Any:
            return getattr(probe(**{key: value}), name)

        return run

    def _cross_field(self, fields: Mapping[str, Any], path: str, exc: Exception) -> None:
        # Cross-field checks (``__attrs_post_init__``) say "key: problem"; put the
        # key into the path so the message reads like every other one.
        message = str(exc)
        key, sep, rest = message.partition(": ")
        if sep and key in fields:
            self.fail(join(path, key), rest)
        else:
            self.fail(path or "(root)", message)
