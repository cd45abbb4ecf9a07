"""The home a device serves: floors, areas, entities, timers and media, read from a YAML file in the
shape of Home Assistant intents' test fixtures. Validated strictly: a malformed home fails with one
error that names the file, the line and the field, before any tier sees it. The content hash keys
every cache entry, so a changed home invalidates what was learned about the old one."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeslm.errors import EdgeslmError
from edgeslm.formats import strict_yaml

MAX_HOME_BYTES = 4 << 20
_ID = re.compile(r"[a-z0-9_]+")
_ENTITY_ID = re.compile(r"[a-z0-9_]+\.[a-z0-9_]+")


class HomeError(EdgeslmError):
    """A home description that cannot be used, with where and why."""


@dataclass(frozen=True)
class Floor:
    id: str
    name: str


@dataclass(frozen=True)
class Area:
    id: str
    name: str
    floor: str | None = None


@dataclass(frozen=True)
class Entity:
    id: str  # domain.object_id
    name: str
    area: str | None = None
    state: Any = None  # a string, or a mapping of spellings (as some fixtures give it)
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class Home:
    language: str
    floors: tuple[Floor, ...] = ()
    areas: tuple[Area, ...] = ()
    entities: tuple[Entity, ...] = ()
    timers: tuple[dict[str, Any], ...] = ()
    media: tuple[str, ...] = ()  # titles

    def area(self, area_id: str) -> Area:
        return next(a for a in self.areas if a.id == area_id)

    def digest(self) -> str:
        """sha256 of the home's canonical JSON: equal homes hash alike whatever their YAML layout."""
        text = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- reading ---------------------------------------------------------------------------------------
class _Map(dict):
    line = 0
    key_lines: dict[str, int]


class _List(list):
    line = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping, key and list (1-based)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Map:  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise HomeError(f"line {key_node.start_mark.line + 1}: {key!r} is given twice "
                                f"(first on line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
        out = _Map(super().construct_mapping(node, deep=True))
        out.line, out.key_lines = node.start_mark.line + 1, {str(k): v for k, v in seen.items()}
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> _List:  # type: ignore[override]
        out = _List(super().construct_sequence(node, deep=True))
        out.line = node.start_mark.line + 1
        return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_sequence)


def load_home(path: Path | str) -> Home:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HomeError(f"{path}: cannot read the home: {exc.strerror or exc}") from None
    if len(raw) > MAX_HOME_BYTES:
        raise HomeError(f"{path}: {len(raw)} bytes; a home description is at most {MAX_HOME_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HomeError(f"{path}: not UTF-8 (byte {exc.start})") from None
    try:
        return parse_home(text)
    except HomeError as exc:
        raise HomeError(f"{path}: {exc}") from None


def parse_home(text: str) -> Home:
    try:
        doc = strict_yaml.safe_load(text, _Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise HomeError(f"{where}not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise HomeError(f"not valid YAML: {exc}") from None
    if not isinstance(doc, _Map):
        raise HomeError("the home must be a mapping with language, areas, entities, ...")
    _keys(doc, "the home", {"language"}, {"floors", "areas", "entities", "timers", "media"})
    language = _string(doc, "language", "the home")
    floors = [(Floor(_ident(f, "id", where), _string(f, "name", where)), where)
              for f, where in _items(doc, "floors", {"name", "id"}, set())]
    floor_ids = _unique([(f.id, where) for f, where in floors], "floor")
    areas = []
    for a, where in _items(doc, "areas", {"name", "id"}, {"floor"}):
        floor = _optional_ident(a, "floor", where)
        if floor is not None and floor not in floor_ids:
            raise HomeError(f"{where}: floor {floor!r} is not among the floors ({', '.join(sorted(floor_ids)) or 'none'})")
        areas.append((Area(_ident(a, "id", where), _string(a, "name", where), floor), where))
    area_ids = _unique([(a.id, where) for a, where in areas], "area")
    entities = []
    for e, where in _items(doc, "entities", {"name", "id"}, {"area", "state", "attributes"}):
        entity_id = _string(e, "id", where)
        if not _ENTITY_ID.fullmatch(entity_id):
            raise HomeError(f"{where}: id {entity_id!r} must be domain.object_id (lowercase letters, digits, _)")
        area = _optional_ident(e, "area", where)
        if area is not None and area not in area_ids:
            raise HomeError(f"{where}: area {area!r} is not among the areas ({', '.join(sorted(area_ids)) or 'none'})")
        state = e.get("state")
        if state is not None and not _scalar_or_map(state):
            raise HomeError(f"{_at(e, 'state', where)}: state must be a string, a number or a mapping of them")
        attributes = e.get("attributes") or {}
        if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
            raise HomeError(f"{_at(e, 'attributes', where)}: attributes must be a mapping of names to values")
        entities.append((Entity(entity_id, _string(e, "name", where), area, _plain(state), _plain(attributes)), where))
    _unique([(e.id, where) for e, where in entities], "entity")
    timers = []
    for t, where in _items(doc, "timers", set(), None):
        if not all(_scalar_or_map(v) for v in t.values()):
            raise HomeError(f"{where}: a timer's fields must be strings, numbers or booleans")
        timers.append(_plain(t))
    media = tuple(_string(m, "title", where) for m, where in _items(doc, "media", {"title"}, set()))
    return Home(language, tuple(f for f, _ in floors), tuple(a for a, _ in areas), tuple(e for e, _ in entities),
                tuple(timers), media)


# -- validation helpers ----------------------------------------------------------------------------
def _at(m: _Map, key: str, where: str) -> str:
    line = m.key_lines.get(key) if isinstance(m, _Map) else None
    return f"line {line}: {where}.{key}" if line else f"{where}.{key}"


def _keys(m: _Map, where: str, required: set[str], optional: set[str] | None) -> None:
    missing = sorted(required - set(m))
    if missing:
        raise HomeError(f"line {m.line}: {where} has no {', '.join(missing)}")
    if optional is not None:
        unknown = sorted(str(k) for k in set(m) - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            raise HomeError(f"{_at(m, unknown[0], where)}: unknown field {unknown[0]!r} (allowed: {allowed})")


def _items(doc: _Map, name: str, required: set[str], optional: set[str] | None) -> list[tuple[_Map, str]]:
    value = doc.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise HomeError(f"{_at(doc, name, 'the home')} must be a list")
    out = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, _Map):
            line = getattr(value, "line", 0)
            raise HomeError(f"line {line}: {where} must be a mapping with {', '.join(sorted(required)) or 'fields'}")
        where = f"line {item.line}: {where}"
        _keys(item, where, required, optional)
        out.append((item, where))
    return out


def _string(m: _Map, key: str, where: str) -> str:
    value = m.get(key)
    if not isinstance(value, str) or not value.strip():
        raise HomeError(f"{_at(m, key, where)} must be a non-empty string, not {value!r}")
    return value


def _ident(m: _Map, key: str, where: str) -> str:
    value = _string(m, key, where)
    if not _ID.fullmatch(value):
        raise HomeError(f"{_at(m, key, where)}: {value!r} must be lowercase letters, digits and _")
    return value


def _optional_ident(m: _Map, key: str, where: str) -> str | None:
    return None if m.get(key) is None else _ident(m, key, where)


def _unique(ids: list[tuple[str, str]], kind: str) -> set[str]:
    seen: dict[str, str] = {}
    for value, where in ids:
        if value in seen:
            raise HomeError(f"{where}: {kind} id {value!r} is used twice ({seen[value]})")
        seen[value] = where
    return set(seen)


def _scalar_or_map(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _scalar_or_map(v) for k, v in value.items())
    return isinstance(value, str | int | float | bool) or value is None


def _plain(value: Any) -> Any:
    """Our line-remembering containers as plain dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
