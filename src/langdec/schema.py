"""Typed dataclasses built from YAML mappings: every key checked, every value coerced to its field's
type, and an error that names the file, the key and what was expected."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import LangdecError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
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
    if origin is list:
        if not isinstance(value, list):
            raise LangdecError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise LangdecError(f"{where}: expected a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, where): _coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
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


def build(cls, data: Any, where: str):
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
            kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise LangdecError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: an alias repeats a node, and a few nested ones (a "billion laughs")
    expand to gigabytes; langdec's experiment files never need them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "an alias (*name) repeats another node; langdec's experiment files "
                                              "take no anchors or aliases, write the values out", self.peek_event().start_mark)
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
