"""`edgeslm train`: fine-tune an encoder with a classification head."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.command()
# no click defaults here: a --config file's model and data must not be overridden by them
@click.option("--model", help="Built-in name or local path [default: minilm-l6]; ts-transformer for time series.")
@click.option("--data", help="Built-in dataset (ha-intents, rotten-tomatoes; series: forda, ecg5000), or your own "
                             ".jsonl/.csv file or folder [default: ha-intents].")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder to write.")
@click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path),
              help="JSON/YAML TrainConfig; flags given on the command line win.")
@click.option("--epochs", type=float)
@click.option("--max-steps", type=int)
@click.option("--seed", type=int)
@click.option("--max-length", type=int, help="Token window; longer texts are truncated (default: sized to the data).")
@click.option("--limit-train", type=int, help="Use only N training examples (smoke runs).")
@json_option
@handle_errors
def train(model: str | None, data: str | None, out: Path, config_file: Path | None, epochs: float | None,
          max_steps: int | None, seed: int | None, max_length: int | None, limit_train: int | None,
          as_json: bool) -> None:
    """Fine-tune MODEL on DATA; early stopping on the validation split. `--model ts-transformer` trains a
    time-series classifier from scratch on forda, ecg5000 or a JSONL of {"series": [...], "label": ...}."""
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train as run_training

    base = _read_config(config_file) if config_file else {}
    flags = {"model": model, "data": data, "epochs": epochs, "max_steps": max_steps, "seed": seed,
             "max_length": max_length, "limit_train": limit_train}
    if (model or base.get("model")) == "ts-transformer":
        return _train_series(base, flags, out, as_json)
    config = TrainConfig.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}})
    record = run_training(config, out, progress=not as_json)
    summary = {"run": str(out), "steps": record["steps"], "best_step": record["best_step"],
               "train_seconds": record["train_seconds"], "metrics": record["metrics"], "labels": len(record["labels"]),
               "max_length": record["max_length"], "truncated": record["dataset"]["truncated"],
               "sizes": record["dataset"]["sizes"], "schedule": record["schedule"]}
    emit(summary, as_json, lambda d: (
        f"{_truncation_line(d)}"
        f"trained {d['steps']} of {d['schedule']['steps']} planned steps ({d['schedule']['epochs']} epochs) "
        f"in {d['train_seconds']} s (best at {d['best_step']}) -> {out}\n"
        f"val accuracy {d['metrics']['val']['accuracy']:.4f}, test accuracy {d['metrics']['test']['accuracy']:.4f} "
        f"(held-out templates and names)"))


def _train_series(base: dict, flags: dict, out: Path, as_json: bool) -> None:
    from edgeslm.errors import ConfigError
    from edgeslm.train.series import SeriesTrainConfig, train_series

    if flags.pop("max_length") is not None:
        raise ConfigError("--max-length is a token window; a series model reads the series' own length")
    config = SeriesTrainConfig.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}})
    record = train_series(config, out, progress=not as_json)
    summary = {"run": str(out), "steps": record["steps"], "best_step": record["best_step"], "params": record["params"],
               "train_seconds": record["train_seconds"], "metrics": record["metrics"], "labels": len(record["labels"]),
               "series": record["series"], "sizes": record["dataset"]["sizes"], "schedule": record["schedule"]}
    emit(summary, as_json, lambda d: (
        f"trained ts-transformer ({d['params']:,} parameters) {d['steps']} of {d['schedule']['steps']} planned steps "
        f"in {d['train_seconds']} s (best at {d['best_step']}) -> {out}\n"
        f"series of {d['series']['length']} steps x {d['series']['channels']} channel(s), {d['labels']} labels; "
        f"val accuracy {d['metrics']['val']['accuracy']:.4f}, test accuracy {d['metrics']['test']['accuracy']:.4f}"))


def _truncation_line(d: dict) -> str:
    cut, n = d["truncated"]["train"], d["sizes"]["train"]
    return f"{cut} of {n} training texts were longer than {d['max_length']} tokens and were truncated\n" if cut else ""


def _read_config(path: Path) -> dict:
    import yaml

    from edgeslm.errors import ConfigError
    from edgeslm.formats import strict_yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            data = strict_yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise ConfigError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except (ValueError, RecursionError) as exc:  # a number past Python's digit limit, nesting past the stack
            raise ConfigError(f"{path}: not valid JSON ({str(exc)[:80] or 'nested too deeply'})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a train config is a mapping of field: value, got a {type(data).__name__}")
    return data
