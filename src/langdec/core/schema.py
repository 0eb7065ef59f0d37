"""Typed dataclasses built from YAML mappings: every key checked, every value coerced to its field's
type, and an error that names the file, the key and what was expected."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from langdec.core.errors import LangdecError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


@dataclasses.dataclass(frozen=True)
class Key:
    """Where a value sits: the file (or file:entry) and the dotted key below it, so a message can name both."""

    root: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.root}.{self.path}" if self.path else self.root

    def child(self, name: object) -> Key:
        return Key(self.root, f"{self.path}.{name}" if self.path else str(name))

    def item(self, index: int) -> Key:
        return Key(self.root, f"{self.path}[{index}]") if self.path else Key(f"{self.root}[{index}]")

    def refuse(self, problem: str) -> LangdecError:
        """`experiments/profiles/smoke.yaml: training.lr must be positive, got 0`."""
        return LangdecError(f"{self.root}: {self.path} {problem}")


def _coerce(value: Any, tp, where: Key) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, typing.get_args(tp), where)
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise where.refuse(f"= {value!r}; valid values: {', '.join(map(str, typing.get_args(tp)))}")
    if origin is list:
        if not isinstance(value, list):
            raise LangdecError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, where.item(i)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise LangdecError(f"{where}: expected a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, where): _coerce(v, value_tp, where.child(k)) for k, v in value.items()}
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    return _coerce_scalar(value, tp, where)


def _coerce_union(value: Any, options: tuple, where: Key) -> Any:
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _coerce(value, option, where)
        except LangdecError as exc:
            errors.append(str(exc))
    raise LangdecError(errors[0] if errors else f"{where}: invalid value {value!r}")


def _coerce_scalar(value: Any, tp, where: Key) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is Path:
        return Path(value)
    raise LangdecError(f"{where}: expected {_type_name(tp)}, got {value!r}")


# field metadata the builder checks on every dataclass it builds, e.g. field(default=8, metadata=POSITIVE)
POSITIVE = {"positive": True}


def at_least(minimum: float) -> dict[str, float]:
    return {"min": minimum}


def _check_field(value: Any, f: dataclasses.Field, where: Key) -> None:
    if isinstance(value, float) and not math.isfinite(value):  # nan passes every < and > check
        raise where.refuse(f"= {value}; give a finite number")
    if value is None:  # an optional setting left unset
        return
    if f.metadata.get("positive") and not value > 0:
        raise where.refuse(f"must be positive, got {value}")
    if "min" in f.metadata and value < f.metadata["min"]:
        raise where.refuse(f"must be >= {f.metadata['min']}, got {value}")


def build(cls, data: Any, where: str | Key):
    """`cls` from a mapping: unknown and missing keys refused, each value coerced to its field's type (a `Literal`
    lists the valid values), the field metadata above checked, then the class's own `validate(key)`, if it has
    one, for rules that span its fields."""
    where = where if isinstance(where, Key) else Key(where)
    if not isinstance(data, dict):
        raise LangdecError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise LangdecError(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], where.child(name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise LangdecError(f"{where}: missing required key {name!r}")
    built = cls(**kwargs)
    for name, f in fields.items():
        _check_field(getattr(built, name), f, where.child(name))
    validate = getattr(built, "validate", None)
    if callable(validate):
        validate(where)
    return built


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: an alias repeats a node, and a few nested ones (a "billion laughs")
    expand to gigabytes; langdec's experiment files never need them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                "an alias (*name) repeats another node; langdec's experiment files "
                "take no anchors or aliases, write the values out",
                self.peek_event().start_mark,
            )
        return super().compose_node(parent, index)


def load_yaml_text(text: str):
    return yaml.load(text, Loader=_NoAliases)


def read_yaml(path: Path) -> dict:
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LangdecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LangdecError(f"{path}: a folder; give a YAML file") from None
    except UnicodeDecodeError as exc:
        raise LangdecError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise LangdecError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise LangdecError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:300]})") from None
    if not isinstance(data, dict):
        raise LangdecError(f"{path}: expected a mapping at the top level")
    return data
