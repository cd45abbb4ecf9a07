"""`edgeslm compress` and `edgeslm compare`."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.compare import compare_table, decoder_table


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--recipe", "recipe_name", required=True, help="Built-in recipe name or a YAML file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle folder to write.")
@click.option("--calibration", type=click.Path(path_type=Path), help="JSONL/CSV sentences for int8-static.")
@click.option("--floor", type=float, help="Override the recipe's floor (share of fp32 accuracy to keep).")
@click.option("--profile", default="this-machine", show_default=True,
              help="Device profile (name or YAML) the bundle is for: on x86 without VNNI, int8 weights get 7 bits.")
@json_option
@handle_errors
def compress(source: Path, recipe_name: str, out: Path, calibration: Path | None, floor: float | None,
             profile: str, as_json: bool) -> None:
    """Compress SOURCE (a training run, or a bundle exported from one) with a recipe, under an accuracy guard."""
    from edgeslm.compress.recipe import Recipe, load_recipe

    recipe = load_recipe(recipe_name)
    if floor is not None:
        recipe = Recipe.from_dict({**recipe.to_dict(), "floor": floor}, "--floor")
    from edgeslm.compress.pipeline import compress as run_compress

    result = run_compress(source, recipe, out, calibration=calibration, progress=not as_json, profile=profile,
                          echo=None if as_json else lambda s: click.echo(s, err=True))
    emit(result["report"], as_json, lambda r: compare_table([(out.name, r)]))


@click.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--plot", type=click.Path(path_type=Path), help="Write accuracy vs latency and size here (PNG).")
@json_option
@handle_errors
def compare(bundles: tuple[Path, ...], plot: Path | None, as_json: bool) -> None:
    """Compare compressed bundles: accuracy kept, size, sparsity and latency against fp32."""
    from edgeslm.formats.reader import open_bundle

    rows, decoders = [], []
    for path in bundles:
        m = open_bundle(path).manifest
        report = m.provenance.get("compression")
        if report is None:
            continue  # an fp32 export: it is the baseline every report already carries
        (decoders if m.family == "decoder" else rows).append((m.name, report))
    if not rows and not decoders:
        from edgeslm.errors import BundleError

        raise BundleError("none of these bundles carries a compression report; run `edgeslm compress` or "
                          "`edgeslm quantize-gguf` first")
    if plot and rows:
        from edgeslm.report.compare import plot_tradeoffs

        plot_tradeoffs(rows, plot)
    text = "\n\n".join(t for t in (compare_table(rows) if rows else "",
                                    decoder_table(decoders) if decoders else "") if t)
    emit({"bundles": [{"name": n, **r} for n, r in rows + decoders], "plot": str(plot) if plot and rows else None},
         as_json, lambda _: text + (f"\nplot: {plot}" if plot and rows else ""))
