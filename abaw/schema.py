"""Typed configs as plain dataclasses: a field's annotation is its type, ``option(...)`` adds choices or a range.

``check(cls, values)`` validates a (partial) dict of JSON values against the dataclass ``cls`` (nested dataclasses
are sections) and raises a one-line ``AbawError`` naming the key, and the file when given: an unknown key (with
the closest known key), a wrong type, a value outside its choices or its range. The training config
(``abaw.train.config``), the temporal config (``abaw.temporal.train``) and the model options
(``abaw.models.multistream``) are declared this way.

Annotations: ``int`` (not a bool), ``float`` (any number), ``bool``, ``str``, ``X | None`` (null allowed),
``list[X]`` / ``tuple[X, ...]`` (a list whose items are X; a range applies to each item), ``dict[...]`` (any object),
``Any`` (anything), a dataclass (a section with its own keys).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from abaw.errors import AbawError

_NAMES = {bool: ("true/false", "true/false values"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), dict: ("an object", "objects")}


@dataclass(frozen=True)
class Rule:
    """What a value must be beyond its type: one of ``choices``; at least ``ge`` / above ``gt`` / below ``lt``."""

    choices: tuple[Any, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        if low and self.lt is not None:
            return f"in {low}, {self.lt:g})"
        if self.ge is not None:
            return f"at least {self.ge:g}"
        if self.gt is not None:
            return f"greater than {self.gt:g}"
        return f"below {self.lt:g}"

    def allows(self, value: Any) -> bool:
        return not ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                    or (self.lt is not None and value >= self.lt))


def option(default: Any, *, choices: typing.Iterable[Any] | None = None, ge: float | None = None,
           gt: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field with a default (a list or dict is copied for each instance) and a ``Rule``."""
    meta = {"rule": Rule(tuple(choices) if choices is not None else None, ge, gt, lt)}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """A dataclass field holding a nested section (its defaults are ``cls()``)."""
    return dataclasses.field(default_factory=cls)


@dataclass(frozen=True)
class Spec:
    """One field, read from its annotation: accepted types (of the items, for a list), null, list, section."""

    types: tuple[type, ...] | None  # None: anything
    nullable: bool
    sequence: bool
    section: type | None
    rule: Rule | None

    def type_name(self) -> str:
        assert self.types is not None
        if self.sequence:
            what = "a list" if self.types == (object,) else f"a list of {' or '.join(_NAMES[t][1] for t in self.types)}"
        else:
            what = " or ".join(_NAMES[t][0] for t in self.types)
        return what + (" or null" if self.nullable else "")


def _flat(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(a for arg in typing.get_args(hint) for a in _flat(arg))
    return (hint,)


def _types(hints: tuple[Any, ...]) -> tuple[type, ...] | None:
    out: list[type] = []
    for hint in hints:
        if hint is Any:
            return None
        out.append(dict if typing.get_origin(hint) is dict or hint is dict else hint)
    return tuple(out)


@cache
def specs(cls: type) -> dict[str, Spec]:
    """The fields of the dataclass ``cls``, by name."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        args = _flat(hints[f.name])
        nullable = type(None) in args
        args = tuple(a for a in args if a is not type(None))
        rule = f.metadata.get("rule")
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            out[f.name] = Spec(None, nullable, False, args[0], rule)
        elif len(args) == 1 and typing.get_origin(args[0]) in (list, tuple):
            items = tuple(a for arg in typing.get_args(args[0]) if arg is not Ellipsis for a in _flat(arg))
            out[f.name] = Spec(_types(items) or (object,), nullable, True, None, rule)
        else:
            accepted = _types(args)
            out[f.name] = Spec(accepted, nullable or accepted is None, False, None, rule)
    return out


def defaults(cls: type) -> dict[str, Any]:
    """Every key of ``cls`` with its default, sections as nested dicts."""
    return dataclasses.asdict(cls())


def _is(value: Any, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in accepted or object in accepted
    if isinstance(value, int) and float in accepted:
        return True
    return isinstance(value, accepted)


class Checker:
    """Raises the one-line errors: ``<label> '<key>'<owner> must be ...``, naming the file ``where``."""

    def __init__(self, label: str = "config key", owner: str = "", where: str | Path | None = None):
        self.label, self.owner, self.where = label, owner, where

    def fail(self, message: str) -> typing.NoReturn:
        raise AbawError(message, path=str(self.where) if self.where is not None else None)

    def bad(self, key: str, what: str, value: Any) -> typing.NoReturn:
        self.fail(f"{self.label} {key!r}{self.owner} must be {what}, got {value!r}")

    def unknown(self, key: str, prefix: str, known: typing.Iterable[str]) -> typing.NoReturn:
        known = list(known)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {prefix + close[0]!r}?)" if close else f" (known: {', '.join(known)})"
        self.fail(f"unknown {self.label} {prefix + key!r}{self.owner}{hint}")

    def value(self, spec: Spec, key: str, value: Any) -> None:
        """Check one value against its field: null, type (of each item, for a list), choices, range."""
        if value is None:
            if not spec.nullable:
                self.fail(f"{self.label} {key!r}{self.owner} must not be null")
            return
        if spec.types is None:
            return
        items = value if spec.sequence else [value]
        if spec.sequence and not isinstance(value, (list, tuple)):
            self.bad(key, spec.type_name(), value)
        if not all(_is(item, spec.types) for item in items):
            self.bad(key, spec.type_name(), value)
        rule = spec.rule
        if rule is None:
            return
        if rule.choices is not None and value not in rule.choices:
            self.bad(key, f"one of {', '.join(map(str, rule.choices))}", value)
        if (rule.ge, rule.gt, rule.lt) != (None, None, None):
            for item in items:
                if not rule.allows(item):
                    self.bad(key, rule.describe() if not spec.sequence else f"a list of values {rule.describe()}",
                             value)

    def check(self, cls: type, values: Any, prefix: str = "") -> None:
        """Check a (partial) dict against the dataclass ``cls``, recursing into sections."""
        if not isinstance(values, dict):
            self.fail(f"{self.label} {prefix.rstrip('.')!r} must be an object, got {values!r}" if prefix
                      else "a config must be a JSON object")
        fields = specs(cls)
        for key, value in values.items():
            spec = fields.get(key)
            if spec is None:
                self.unknown(key, prefix, fields)
            if spec.section is not None:
                self.check(spec.section, value, prefix + key + ".")
            else:
                self.value(spec, prefix + key, value)


def check(cls: type, values: Any, where: str | Path | None = None, label: str = "config key",
          owner: str = "") -> None:
    """Check a (partial) dict of JSON values against the dataclass ``cls``; one-line AbawError naming key and file."""
    Checker(label, owner, where).check(cls, values)


def build(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` of checked values: lists become tuples for tuple fields, numbers floats for float fields."""
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in values.items():
        args = _flat(hints[key])
        if isinstance(value, list) and any(typing.get_origin(a) is tuple for a in args):
            value = tuple(value)
        elif isinstance(value, int) and not isinstance(value, bool) and float in args and int not in args:
            value = float(value)
        out[key] = value
    return cls(**out)


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data.batch_size`` style keys (creating sections)."""
    node = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def get_dotted(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at a ``data.batch_size`` style key, or ``default`` when a section or the key is missing."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
