"""`edgeslm data`: sample the built-in sets into JSONL splits; make a noisy copy of a test file."""

from __future__ import annotations

import random
from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.group()
def data() -> None:
    """Datasets: built-in real sets and your own JSONL/CSV (columns text,label)."""


@data.command()
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for train/val/test.jsonl.")
@click.option("--seed", default=13, show_default=True)
@json_option
@handle_errors
def split(name: str, out: Path, seed: int, as_json: bool) -> None:
    """Write NAME (ha-intents, rotten-tomatoes, or a file) as leak-free train/val/test JSONL."""
    from edgeslm.data.catalog import load_dataset

    splits = load_dataset(name, seed=seed)
    paths = splits.save(out)
    result = {"dataset": name, "labels": len(splits.labels), "sizes": splits.sizes(),
              "files": {k: str(v) for k, v in paths.items()}, "meta": splits.meta}
    emit(result, as_json, lambda d: f"{name}: {d['sizes']} over {d['labels']} labels -> {out}")


@data.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--strength", default=1.0, show_default=True, help="Scale of filler/typo probabilities.")
@json_option
@handle_errors
def noisy(path: Path, out: Path, seed: int, strength: float, as_json: bool) -> None:
    """Copy a labelled file with fillers, politeness and typos added (an ASR/typing stress test)."""
    from edgeslm.data.noise import add_noise
    from edgeslm.data.records import Example, read_examples, write_jsonl

    rng = random.Random(seed)
    rows = [Example(add_noise(ex.text, rng, strength), ex.label, ex.group) for ex in read_examples(path)]
    write_jsonl(out, rows)
    emit({"in": str(path), "out": str(out), "n": len(rows), "seed": seed}, as_json,
         lambda d: f"wrote {d['n']} noisy examples to {d['out']}")
