"""The training loop: shuffled batches with dynamic padding, AdamW with warmup and linear decay,
validation every `eval_every` steps, early stopping, best weights kept.

It writes a run folder (train/run.py: the model, run.json and the held-out splits).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.data.catalog import code_fingerprint, load_dataset
from edgeslm.data.records import Example
from edgeslm.evaluate.metrics import classification_metrics
from edgeslm.models.loaders import load_classifier
from edgeslm.models.registry import resolve
from edgeslm.train import schedule
from edgeslm.train.config import TrainConfig
from edgeslm.train.run import RunFolder

log = logging.getLogger(__name__)


def train(config: TrainConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    out = Path(out)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)

    source = resolve(config.model)
    data = load_dataset(config.data, seed=config.seed)
    train_rows = list(data.train)
    random.Random(config.seed).shuffle(train_rows)
    if config.limit_train:
        train_rows = train_rows[: config.limit_train]
    val_rows = _subset(data.val, config.limit_eval, config.seed)
    test_rows = _subset(data.test, config.limit_eval, config.seed)

    model, tokenizer = load_classifier(source, data.labels)
    if config.freeze_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    label_id = {label: i for i, label in enumerate(data.labels)}

    lengths = {name: token_lengths(tokenizer, rows)
               for name, rows in (("train", train_rows), ("val", val_rows), ("test", test_rows))}
    max_length = config.max_length or schedule.token_window(lengths["train"], model_window(model, tokenizer))
    truncated = {name: sum(n > max_length for n in ns) for name, ns in lengths.items()}
    if truncated["train"]:
        log.warning("%d of %d training texts are longer than %d tokens and were truncated",
                    truncated["train"], len(train_rows), max_length)

    plan = schedule.plan(len(train_rows), config.batch_size, config.epochs, config.min_steps, config.max_epochs,
                         config.max_steps, config.eval_every)
    total = plan.total
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warm = max(1, int(total * config.warmup))
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )

    def batches(epoch: int):
        order = list(range(len(train_rows)))
        random.Random(config.seed + epoch).shuffle(order)
        for i in range(0, len(order) - config.batch_size + 1, config.batch_size):
            yield [train_rows[j] for j in order[i : i + config.batch_size]]

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -1.0}
    bad_evals = 0
    step, epoch, started = 0, 0, time.perf_counter()
    bar = tqdm(total=total, desc="train", unit="step", disable=not progress)
    model.train()
    stop = False
    while not stop:
        for batch in batches(epoch):
            enc = tokenizer([ex.text for ex in batch], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            target = torch.tensor([label_id[ex.label] for ex in batch])
            loss = model(**enc, labels=target).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % plan.eval_every == 0 or step == total:
                metrics = evaluate_torch(model, tokenizer, val_rows, data.labels, max_length)
                history.append({"step": step, "loss": round(loss.item(), 4), "val_accuracy": metrics["accuracy"],
                                "val_macro_f1": metrics["macro_f1"]})
                log.info("step %d val accuracy %.4f", step, metrics["accuracy"])
                if metrics["macro_f1"] > best["score"]:
                    best = {"score": metrics["macro_f1"], "step": step,
                            "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                    bad_evals = 0
                else:
                    bad_evals += 1
                model.train()
                if bad_evals >= config.patience and step >= plan.stop_after:
                    stop = True
            if step >= total or stop:
                stop = True
                break
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - started

    model.load_state_dict(best["state"])
    model.eval()
    val_metrics = evaluate_torch(model, tokenizer, val_rows, data.labels, max_length)
    test_metrics = evaluate_torch(model, tokenizer, test_rows, data.labels, max_length)

    folder = RunFolder(out)
    folder.model.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder.model, safe_serialization=True)
    tokenizer.save_pretrained(folder.model)
    from edgeslm.data.records import write_jsonl

    write_jsonl(folder.split("val"), val_rows)
    write_jsonl(folder.split("test"), test_rows)
    record = {
        "kind": "edgeslm-run",
        "config": config.to_dict(),  # as given: `make demo` compares it to decide whether to retrain
        "max_length": max_length,  # the token window actually used, and the bundle's
        "schedule": plan.to_dict(),
        "base_model": source.to_dict(),
        "labels": data.labels,
        "dataset": {**data.meta, "sizes": {"train": len(train_rows), "val": len(val_rows), "test": len(test_rows)},
                    "truncated": truncated, "code": code_fingerprint()},
        "history": history,
        "best_step": best["step"],
        "steps": step,
        "train_seconds": round(seconds, 1),
        "metrics": {"val": _headline(val_metrics), "test": _headline(test_metrics)},
    }
    folder.write(record)
    return record


def _subset(rows: list[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded random sample: splits are stored grouped by template, so their first N rows held
    only 4 of the 42 intents and a limited evaluation measured those alone."""
    if not limit or limit >= len(rows):
        return list(rows)
    return random.Random(seed).sample(rows, limit)


def token_lengths(tokenizer: Any, rows: list[Example]) -> list[int]:
    """Tokens per text, special tokens included, before any truncation."""
    if not rows:
        return []
    return [len(ids) for ids in tokenizer([ex.text for ex in rows], truncation=False)["input_ids"]]


def model_window(model: Any, tokenizer: Any) -> int:
    """The most tokens the model can read: its position table, and the tokenizer's own limit."""
    window = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    limit = getattr(tokenizer, "model_max_length", window) or window
    return min(window, int(limit)) if limit < 1_000_000 else window


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "n")}


def evaluate_torch(model: Any, tokenizer: Any, rows: list[Example], labels: list[str], max_length: int,
                   batch_size: int = 128) -> dict[str, Any]:
    import torch

    model.eval()
    predicted: list[str] = []
    with torch.inference_mode():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            enc = tokenizer([ex.text for ex in chunk], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            ids = model(**enc).logits.argmax(-1).tolist()
            predicted += [labels[j] for j in ids]
    return classification_metrics([ex.label for ex in rows], predicted, labels)
