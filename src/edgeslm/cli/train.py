"""`edgeslm train`: fine-tune an encoder with a classification head."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.command()
@click.option("--model", default="minilm-l6", show_default=True, help="Built-in name or local path.")
@click.option("--data", default="ha-intents", show_default=True, help="Built-in dataset, file or folder.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder to write.")
@click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path),
              help="JSON/YAML TrainConfig; flags given on the command line win.")
@click.option("--epochs", type=float)
@click.option("--max-steps", type=int)
@click.option("--seed", type=int)
@click.option("--limit-train", type=int, help="Use only N training examples (smoke runs).")
@json_option
@handle_errors
def train(model: str, data: str, out: Path, config_file: Path | None, epochs: float | None,
          max_steps: int | None, seed: int | None, limit_train: int | None, as_json: bool) -> None:
    """Fine-tune MODEL on DATA; early stopping on the validation split."""
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train as run_training

    base = _read_config(config_file) if config_file else {}
    flags = {"model": model, "data": data, "epochs": epochs, "max_steps": max_steps, "seed": seed,
             "limit_train": limit_train}
    config = TrainConfig.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}})
    record = run_training(config, out, progress=not as_json)
    summary = {"run": str(out), "steps": record["steps"], "best_step": record["best_step"],
               "train_seconds": record["train_seconds"], "metrics": record["metrics"], "labels": len(record["labels"])}
    emit(summary, as_json, lambda d: (
        f"trained {d['steps']} steps in {d['train_seconds']} s (best at {d['best_step']}) -> {out}\n"
        f"val accuracy {d['metrics']['val']['accuracy']:.4f}, test accuracy {d['metrics']['test']['accuracy']:.4f} "
        f"(held-out templates and names)"))


def _read_config(path: Path) -> dict:
    from edgeslm.errors import ConfigError

    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError("YAML configs need PyYAML: pip install pyyaml, or use JSON") from None
        return yaml.safe_load(text) or {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg})") from None
