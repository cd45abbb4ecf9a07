"""`edgeslm models`: built-in models, whether their weights are installed, and where."""

from __future__ import annotations

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.text import table


@click.command()
@click.argument("path", required=False)
@json_option
@handle_errors
def models(path: str | None, as_json: bool) -> None:
    """List built-in models, or describe the model at PATH (HF folder, .safetensors, .gguf)."""
    from edgeslm.models.registry import list_builtin, resolve

    if path:
        emit(resolve(path).to_dict(), as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))
        return
    rows = list_builtin()

    def text(rows: list[dict]) -> str:
        body = table(
            [[r["name"], r["family"], r["format"], f"{r['bytes'] / 1e6:.0f} MB" if r["installed"] else "-",
              r["path"] if r["installed"] else f"not installed: {r['install']}"] for r in rows],
            ["name", "family", "format", "size", "where"],
        )
        return body + "\nAny local Hugging Face folder, .safetensors or .gguf path works too; nothing is downloaded."

    emit({"models": rows}, as_json, lambda d: text(d["models"]))
