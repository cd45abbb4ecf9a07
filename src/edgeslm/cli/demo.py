"""`edgeslm demo`: the main job on the bundled defaults. Train the smart-home intent model, export
it as a bundle, evaluate it torch-free on held-out, noisy and hand-written commands, write a report.
Reuses a finished run and a bundle that still verifies, so a second run takes seconds."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--evalset", type=click.Path(path_type=Path), default=Path("evalsets/home-commands-en.jsonl"),
              show_default=True, help="Extra hand-written test file (skipped if absent).")
@click.option("--max-steps", type=int, help="Cap training steps (a quicker, weaker demo).")
@click.option("--fresh", is_flag=True, help="Retrain and re-export even if results exist.")
@click.option("--recipe", "recipes", multiple=True,
              help="Compression recipes to build (repeatable; default: int8-dynamic, int8-static, int4-weight).")
@click.option("--all-recipes", is_flag=True, help="Also the retraining recipes: sparse90-int8, structured50-int8, distill-l3.")
@json_option
@handle_errors
def demo(out: Path, evalset: Path, max_steps: int | None, fresh: bool, recipes: tuple[str, ...], all_recipes: bool,
         as_json: bool) -> None:
    """Train, bundle, evaluate and report the smart-home intent model."""
    from edgeslm.compress.recipe import builtin_names, load_recipe
    from edgeslm.demo.run import DemoConfig, run_demo

    # the demo compresses its intent encoder: the decoder recipes (gguf-*) do not apply to it
    encoders = [n for n in builtin_names() if "encoder" in load_recipe(n).families]
    chosen = encoders if all_recipes else list(recipes) or DemoConfig().recipes
    config = DemoConfig(out=out, evalset=evalset if evalset.is_file() else None, max_steps=max_steps, fresh=fresh,
                        recipes=chosen)
    summary = run_demo(config, progress=not as_json, echo=None if as_json else click.echo)
    emit(summary, as_json, lambda s: f"report: {s['report']['markdown']}\nplot:   {s['report']['plot']}")
