"""Validated config objects: one per verb, versioned, round-trip to a plain dict.

Each config is a frozen dataclass; `validate()` runs on construction, and `from_dict` refuses
unknown fields so a typo in a YAML or JSON file is an error, not a silently ignored option.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from edgeslm.errors import ConfigError

C = TypeVar("C", bound="Config")


def is_decimal(text: str) -> bool:
    """Only the ASCII digits 0-9. str.isdigit() also takes '²' and '٣', which int() refuses or reads."""
    return text.isascii() and text.isdigit()


@dataclasses.dataclass(frozen=True)
class Config:
    VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(type(self).__name__, f.name, getattr(self, f.name), self._hints()[f.name])
        self.validate()

    def validate(self) -> None:
        """Subclasses raise ConfigError for values out of range."""

    @classmethod
    def _hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", cls.VERSION)
        if version != cls.VERSION:
            raise ConfigError(f"{cls.__name__}: version {version} is not supported (this edgeslm reads {cls.VERSION})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        hints = cls._hints()
        for key, value in data.items():
            if hints[key] in (Path, Path | None) and isinstance(value, str):
                data[key] = Path(value)
        return cls(**data)


def _check_type(owner: str, name: str, value: Any, hint: Any) -> None:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for t in allowed:
        t = typing.get_origin(t) or t
        if t is type(None) and value is None:
            return
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            return
        if isinstance(t, type) and isinstance(value, t) and not (t is int and isinstance(value, bool)):
            return
    names = ", ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise ConfigError(f"{owner}.{name}: expected {names}, got {value!r}")
