"""`edgeslm export` and `edgeslm inspect`: write a bundle, and show (and verify) one."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.text import table


@click.command()
@click.argument("source")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle folder to write.")
@click.option("--name", help="Bundle name (default: the folder name).")
@click.option("--profile", default="any", show_default=True, help="Device profile this variant targets.")
@json_option
@handle_errors
def export(source: str, out: Path, name: str | None, profile: str, as_json: bool) -> None:
    """Bundle SOURCE: a training run folder (encoder -> ONNX) or a GGUF decoder (name or path)."""
    from edgeslm.train.run import RunFolder
    from edgeslm.train.series import is_series_run

    if is_series_run(Path(source)):
        from edgeslm.export.series import export_series

        manifest = export_series(Path(source), out, name=name, profile=profile)
    elif RunFolder(Path(source)).is_run():
        from edgeslm.export.onnx import export_classifier

        manifest = export_classifier(Path(source), out, name=name, profile=profile)
    else:
        from edgeslm.export.gguf import export_gguf

        manifest = export_gguf(source, out, name=name, profile=profile)
    emit(manifest, as_json, lambda m: f"wrote {out} ({m['family']}, {m['engine']})\n" + _evaluation_text(m))


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--no-verify", is_flag=True, help="Skip checking file hashes (manifest still validated).")
@json_option
@handle_errors
def inspect(bundle: Path, no_verify: bool, as_json: bool) -> None:
    """Show a bundle's manifest after verifying every file's sha256."""
    from edgeslm.formats.reader import open_bundle

    b = open_bundle(bundle, verify=not no_verify)
    m = b.manifest.to_dict()
    emit({**m, "verified": not no_verify}, as_json, lambda d: _inspect_text(d))


def _inspect_text(m: dict) -> str:
    lines = [
        f"{m['name']}: {m['family']} ({m['architecture']}), {m['task']}, engine {m['engine']}, format v{m['format_version']}",
        f"created {m['created']} by edgeslm {m['edgeslm_version']}, profile {m['profile']}",
        "hashes verified" if m["verified"] else "hashes NOT verified (--no-verify)",
    ]
    if m["labels"]:
        lines.append(f"{len(m['labels'])} labels: {', '.join(m['labels'][:6])}{', ...' if len(m['labels']) > 6 else ''}")
    lines.append(table([[k, f"{v['bytes']:,}", v["sha256"][:16]] for k, v in m["files"].items()], ["file", "bytes", "sha256"]))
    lines.append(_evaluation_text(m))
    return "\n".join(lines)


def _evaluation_text(m: dict) -> str:
    ev = m.get("evaluation") or {}
    if not ev:
        return "no evaluation recorded"
    return table([[k, v.get("n"), f"{v.get('accuracy', 0):.4f}", f"{v.get('macro_f1', 0):.4f}"] for k, v in ev.items()],
                 ["split", "n", "accuracy", "macro_f1"])
