"""YAML from files a user hands us (homes, device profiles, recipes, train configs), safely: PyYAML's
composer recurses, so a document nested a few thousand levels deep raises RecursionError, which no
caller expects from a parser. Here it is a yaml.YAMLError like any other malformed document, so each
reader's own "not valid YAML" error covers it."""

from __future__ import annotations

from typing import Any

import yaml


class TooDeep(yaml.YAMLError):
    def __str__(self) -> str:
        return "nested too deeply"


def safe_load(text: str, loader: type = yaml.SafeLoader) -> Any:
    """yaml.load with a SafeLoader (or a subclass of it); RecursionError becomes TooDeep."""
    if not issubclass(loader, yaml.SafeLoader):
        raise TypeError("strict_yaml.safe_load takes a SafeLoader or a subclass of it")
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader, checked above
    except RecursionError:
        raise TooDeep() from None
