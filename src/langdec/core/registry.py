"""Things looked up by name (`Registry`): one lookup whose failure lists the valid names, and entries that can
be named as "module:attr" and imported on first use, so a registry low in the layers need not import what its
entries are made of (a scheduler module, an optuna pruner)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from langdec.core.errors import LangdecError, did_you_mean

T = TypeVar("T")


def load_ref(ref: str) -> Any:
    """The object "package.module:attr" names (a dotted attr walks attributes), or the module itself without ":"."""
    module, _, attr = ref.partition(":")
    found: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        found = getattr(found, part)
    return found


class _Ref:
    """An entry not imported yet."""

    __slots__ = ("ref",)

    def __init__(self, ref: str) -> None:
        self.ref = ref


class Registry(Generic[T]):
    """Entries of one kind by name. `get` is the only lookup, so every failure reads the same:
    "unknown PEFT method 'lorra'; valid PEFT methods: dora, ia3, ln_tuning, lora"."""

    def __init__(
        self, kind: str, entries: Mapping[str, T] | None = None, *, lazy: Mapping[str, str] | None = None
    ) -> None:
        self.kind = kind
        self._entries: dict[str, T | _Ref] = dict(entries or {})
        for name, ref in (lazy or {}).items():
            self._add(name, _Ref(ref))

    def _add(self, name: str, entry: T | _Ref) -> None:
        if name in self._entries:  # two entries under one name: the second would silently shadow the first
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def add(self, name: str, entry: T) -> T:
        self._add(name, entry)
        return entry

    def register(self, entry: T) -> T:
        """A decorator: the function or class under its own `__name__`."""
        return self.add(getattr(entry, "__name__"), entry)

    def unknown(self, name: object, where: str = "") -> LangdecError:
        """The error of a failed lookup; `where` (a file and key) goes in front when given."""
        error = did_you_mean(self.kind, str(name), self._entries)
        return LangdecError(f"{where}: {error}") if where else error

    def get(self, name: object, where: str = "") -> T:
        if not isinstance(name, str) or name not in self._entries:
            raise self.unknown(name, where)
        entry = self._entries[name]
        if isinstance(entry, _Ref):
            entry = self._entries[name] = load_ref(entry.ref)
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return ((name, self.get(name)) for name in list(self._entries))

    def values(self) -> Iterator[T]:
        return (entry for _, entry in self.items())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        """The names, in the order they were given (`names()` sorts them)."""
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
