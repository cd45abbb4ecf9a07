"""`edgeslm select`: the recipe and thread count for a device profile and budget."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.text import number, table


@click.command("select")
@click.argument("source")
@click.option("--profile", default="this-machine", show_default=True, help="Device profile (name or YAML) to choose for.")
@click.option("--budget", required=True, help='Limits, e.g. "p90_ms<=5,ram_mb<=150,accuracy>=0.99*fp32" for an encoder '
              '(costs: p50_ms, p90_ms, ram_mb, size_mb, joules; accuracy absolute or a share of fp32), or '
              '"tok_s>=40,ttft_ms<=500,ram_mb<=300,ppl<=1.05*f16" for a decoder (ram_mb, size_mb, joules per token; '
              'perplexity absolute or a share of the F16 file\'s).')
@click.option("--recipe", "recipes", multiple=True, help="A recipe name or YAML to consider (repeat; default: every built-in).")
@click.option("--threads", "threads", multiple=True, type=int, help="Thread counts to consider (default: what the profile allows).")
@click.option("--out", type=click.Path(path_type=Path), help="Write the chosen bundle here.")
@click.option("--plot", type=click.Path(path_type=Path), help="Write the frontier figure here (PNG).")
@click.option("--cache", type=click.Path(path_type=Path), help="Result cache (default: $EDGESLM_CACHE or ~/.cache/edgeslm).")
@click.option("--exhaustive", is_flag=True, help="Compress and measure every candidate (the reference select is judged by).")
@json_option
@handle_errors
def select(source: str, profile: str, budget: str, recipes: tuple[str, ...], threads: tuple[int, ...], out: Path | None,
           plot: Path | None, cache: Path | None, exhaustive: bool, as_json: bool) -> None:
    """Choose the compression recipe and thread count whose bundle meets BUDGET on PROFILE with the best
    accuracy: predict every candidate first, compress and measure only those that may win. SOURCE is a
    training run (encoder recipes) or a decoder model: smollm2-135m, a LLaMA folder or .gguf (the gguf-*
    recipes, one per GGUF type)."""
    from edgeslm.select.search import SelectConfig
    from edgeslm.select.search import select as run_select

    config = SelectConfig(budget=budget, profile=profile, recipes=list(recipes), threads=list(threads), cache=cache,
                          exhaustive=exhaustive)
    result = run_select(source, config, out=out, plot=plot, say=None if as_json else lambda s: click.echo(s, err=True))
    emit(result, as_json, lambda r: decoder_text(r) if r.get("family") == "decoder" else frontier_text(r))


def decoder_text(r: dict) -> str:
    front, chosen = set(r["frontier"]), (r["chosen"] or {}).get("name")
    rows = []
    for c in r["candidates"]:
        m, p, q = c["measured"], c["predicted"], c["quality"]
        mark = "chosen" if c["name"] == chosen else ("frontier" if c["name"] in front else "")
        rows.append([c["name"], c["status"], mark, number(q.get("ppl"), ".3f"), number(q.get("ppl_ratio"), ".3f"),
                     number(p.get("tok_s"), ".1f"), number(m.get("tok_s"), ".1f"), number(p.get("ttft_ms"), ".0f"),
                     number(m.get("ttft_ms"), ".0f"), number(m.get("ram_mb"), ".0f"), number(p.get("size_mb"), ".1f"),
                     number(m.get("size_mb"), ".1f"), number(m.get("joules", 0) * 1e3 if m else None, ".2f"),
                     c["reason"][:60]])
    lines = [table(rows, ["candidate", "status", "", "ppl", "x f16", "pred tok/s", "tok/s", "pred TTFT", "TTFT ms",
                          "RAM MiB", "pred MB", "MB", "mJ/token", "why skipped"]),
             f"{r['source']}: budget {r['budget']['text']} on {r['profile']['name']}; "
             f"{r['compressed']} quantized now, {r['measured']} measured, {r['wall_s']:.0f} s"]
    if r["per_token_prediction_error_median"] is not None:
        lines.append(f"median prediction error: per token {r['per_token_prediction_error_median']:.1%}, "
                     f"TTFT {r['ttft_prediction_error_median']:.1%}, size {r['size_prediction_error_median']:.2%}")
    lines.append(f"chosen: {chosen}" if chosen else f"nothing chosen: {r.get('reason')}")
    for key, what in (("bundle", "wrote"), ("plot", "plot:")):
        if r.get(key):
            lines.append(f"{what} {r[key]}")
    return "\n".join(lines)


def frontier_text(r: dict) -> str:
    front, chosen = set(r["frontier"]), (r["chosen"] or {}).get("name")
    rows = []
    for c in r["candidates"]:
        m, p = c["measured"], c["predicted"]
        mark = "chosen" if c["name"] == chosen else ("frontier" if c["name"] in front else "")
        rows.append([c["name"], c["status"], mark, number(c["accuracy"].get("val"), ".4f"), number(c["accuracy"].get("test"), ".4f"),
                     number(p.get("p90_ms"), ".2f"), number(m.get("p90_ms"), ".2f"), number(m.get("ram_mb"), ".0f"),
                     number(m.get("size_mb"), ".1f"), number(m.get("joules", 0) * 1e3 if m else None, ".2f"),
                     c["reason"][:60]])
    lines = [table(rows, ["candidate", "status", "", "val acc", "test acc", "pred p90", "p90 ms", "RAM MiB", "MB", "mJ",
                          "why skipped"]),
             f"fp32 validation accuracy {r['fp32']['val']:.4f}; budget {r['budget']['text']} on {r['profile']['name']}; "
             f"{r['compressed']} compressed now, {r['measured']} measured, {r['wall_s']:.0f} s"]
    if r["p90_prediction_error_median"] is not None:
        lines.append(f"median p90 prediction error {r['p90_prediction_error_median']:.1%}")
    lines.append(f"chosen: {chosen}" if chosen else f"nothing chosen: {r.get('reason')}")
    if r.get("bundle"):
        lines.append(f"wrote {r['bundle']}")
    if r.get("plot"):
        lines.append(f"plot: {r['plot']}")
    return "\n".join(lines)
