"""A recipe: a named list of modifiers and the quality bar they must keep (encoders: a floor of
validation accuracy; decoders: a ceiling of perplexity). YAML for people
(`recipes/*.yaml` are the built-ins), objects for code; saved into the bundle it produced."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edgeslm.compress.modifiers import MODIFIERS, TORCH_MODIFIERS, GgufQuantConfig, QuantizeConfig
from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.formats import strict_yaml

RECIPE_FIELDS = {"name", "description", "floor", "ceiling", "families", "modifiers", "version"}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    floor: float  # keep >= floor x fp32 validation accuracy
    families: tuple[str, ...]
    modifiers: tuple[tuple[str, Config], ...]
    ceiling: float | None = None  # decoders: perplexity <= ceiling x the unquantized (F16) file's

    @property
    def torch_steps(self) -> list[tuple[str, Config]]:
        return [(kind, cfg) for kind, cfg in self.modifiers if kind in TORCH_MODIFIERS]

    @property
    def quantize(self) -> QuantizeConfig | None:
        found = [cfg for kind, cfg in self.modifiers if kind == "quantize"]
        return found[0] if found else None  # type: ignore[return-value]

    @property
    def gguf(self) -> GgufQuantConfig | None:
        found = [cfg for kind, cfg in self.modifiers if kind == "quantize-gguf"]
        return found[0] if found else None  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        bar = {"floor": self.floor} if self.ceiling is None else {"ceiling": self.ceiling}
        return {
            "version": 1, "name": self.name, "description": self.description, **bar,
            "families": list(self.families),
            "modifiers": [{"type": kind, **{k: v for k, v in cfg.to_dict().items() if k != "version"}}
                          for kind, cfg in self.modifiers],
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "recipe") -> Recipe:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: a recipe is a mapping with name, floor and modifiers")
        unknown = sorted(set(data) - RECIPE_FIELDS)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(RECIPE_FIELDS))}")
        if data.get("version", 1) != 1:
            raise ConfigError(f"{where}: recipe version {data.get('version')} is not supported (reads 1)")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: name must be a non-empty string")
        floor = data.get("floor", 0.97)
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 < floor <= 1:
            raise ConfigError(f"{where}: floor {floor!r} is impossible; it is a share of fp32 accuracy in (0, 1]")
        families = data.get("families", ["encoder"])
        if not isinstance(families, list) or not set(families) <= {"encoder", "decoder"}:
            raise ConfigError(f"{where}: families must be a list of encoder/decoder")
        raw = data.get("modifiers")
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}: modifiers must be a non-empty list")
        modifiers = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or "type" not in item:
                raise ConfigError(f"{where}: modifiers[{i}] needs a type ({', '.join(MODIFIERS)})")
            kind = item["type"]
            if kind not in MODIFIERS:
                raise ConfigError(f"{where}: modifiers[{i}]: unknown type {kind!r}; known: {', '.join(MODIFIERS)}")
            body = {k: v for k, v in item.items() if k != "type"}
            try:
                modifiers.append((kind, MODIFIERS[kind].from_dict(body)))
            except ConfigError as exc:
                raise ConfigError(f"{where}: modifiers[{i}] ({kind}): {exc}") from None
        kinds = [k for k, _ in modifiers]
        ceiling = data.get("ceiling")
        if "quantize-gguf" in kinds or families == ["decoder"]:
            if families != ["decoder"] or kinds != ["quantize-gguf"]:
                raise ConfigError(f"{where}: a decoder recipe has families [decoder] and one modifier, quantize-gguf")
            if isinstance(ceiling, bool) or not isinstance(ceiling, (int, float)) or not 1 <= ceiling <= 10:
                raise ConfigError(f"{where}: ceiling {ceiling!r}: a decoder recipe needs one, the most perplexity may "
                                  "grow, as a multiple of the unquantized file's in [1, 10]")
            if "floor" in data:
                raise ConfigError(f"{where}: floor is the encoders' bar; decoder recipes have a ceiling")
            ceiling = float(ceiling)
        elif ceiling is not None:
            raise ConfigError(f"{where}: ceiling is the decoders' bar (perplexity); encoder recipes have a floor")
        if kinds.count("quantize") > 1 or ("quantize" in kinds and kinds[-1] != "quantize"):
            raise ConfigError(f"{where}: quantize works on the exported graph: at most one, and last")
        return cls(name, str(data.get("description", "")), float(floor), tuple(families), tuple(modifiers), ceiling)


def with_bar(recipe: Recipe, floor: float | None = None, ceiling: float | None = None) -> Recipe:
    """The recipe with its floor (encoders) or ceiling (decoders) overridden, validated again."""
    data = recipe.to_dict()
    if floor is not None:
        data["floor"] = floor
    if ceiling is not None:
        data["ceiling"] = ceiling
    return Recipe.from_dict(data, "--floor/--ceiling") if floor is not None or ceiling is not None else recipe


def builtin_names() -> list[str]:
    folder = resources.files("edgeslm.compress") / "recipes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> Recipe:
    if name_or_path in builtin_names():
        text = (resources.files("edgeslm.compress") / "recipes" / f"{name_or_path}.yaml").read_text(encoding="utf-8")
        where = f"built-in recipe {name_or_path}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"{name_or_path!r} is neither a built-in recipe ({', '.join(builtin_names())}) nor a YAML file")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        data = strict_yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from None
    return Recipe.from_dict(data, where)
