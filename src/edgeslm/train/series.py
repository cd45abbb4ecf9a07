"""`edgeslm train --model ts-transformer`: train the small time-series transformer from scratch on a
built-in UCR set or the user's JSONL, keep the weights of the best validation epoch, and write a run
folder (train/run.py's layout: model/model.safetensors, run.json, data/{val,test}.jsonl) that export
and compress read.

With `ema` > 0 the weights kept are an exponential moving average of the trained ones (BatchNorm's
statistics included), chosen and scored the same way. With `members` > 1 that many models train from
consecutive seeds on the same splits and are saved as one ensemble (models/ts_transformer.py TsEnsemble).
With `rocket` > 0 a random-convolution classifier (models/conv_features.py) is fitted on the same training
series, without gradients, and joins them in that graph; the run records each part's scores alone.

Augmentation (training batches only): a random circular shift of each series and Gaussian jitter, and
where the class does not depend on the series' sign or direction of time (stationary noise such as
FordA's engine sound; not heartbeats) a random sign flip and time reversal. The graph z-normalises each
series, so amplitude scaling would change nothing.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.config import Config
from edgeslm.errors import BundleError, ConfigError
from edgeslm.train.run import RunFolder

TASK = "series-classification"


@dataclass(frozen=True)
class SeriesTrainConfig(Config):
    """The config of `edgeslm train` for time series (`--model ts-transformer`)."""

    model: str = "ts-transformer"
    data: str = "forda"  # forda | ecg5000 | a JSONL file of {"series": [...], "label": ...}
    seed: int = 13
    patch: int = 16
    stride: int = 8
    stem: int = 32
    stem_layers: int = 1
    d_model: int = 64
    heads: int = 4
    layers: int = 3
    ff: int = 128
    dropout: float = 0.1
    normalize: bool = True
    epochs: float = 60
    max_steps: int | None = None  # caps epochs: tests and smoke runs
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # share of steps
    label_smoothing: float = 0.1
    shift: float = 0.1  # random circular shift of up to this share of the length (0: none)
    jitter: float = 0.03  # Gaussian noise, in units of each series' standard deviation (0: none)
    flip: float = 0.0  # probability of negating a training series (only where the sign carries no class)
    reverse: float = 0.0  # probability of reversing a training series in time (only for stationary signals)
    patience: int | None = None  # epochs without a better validation score before stopping (None: run all)
    limit_train: int | None = None  # use only N training series (tests, smoke runs)
    threads: int | None = None  # torch threads (default: torch's)
    # decay of an exponential moving average of the weights, updated every step (0: off). The average is
    # what validation scores and what is kept: it smooths the step-to-step swings a small training set
    # gives (FordA's validation accuracy moved by 3-5 points between epochs without it).
    ema: float = 0.0
    # models trained from seeds seed, seed + 1, ... on the same splits, their probabilities averaged in one
    # graph (a deep ensemble): steadier than one run, at `members` times the size and the inference cost
    members: int = 1
    # train on TRAIN's validation carve too, for the whole schedule, and keep the last (averaged) weights: a
    # small set gains a tenth more examples, and no epoch is chosen on a few dozen series. The carve's score
    # is then of series the model saw (the run records it as such), which is what the int8 guard compares on.
    refit: bool = False
    # random-convolution features (MiniRocket's kind) of a ridge classifier whose probability is combined with
    # the transformers' (0: none); its convolutions see every `rocket_stride`-th position; `rocket_weight`: its
    # share of the combined probability
    rocket: int = 0
    rocket_stride: int = 1
    rocket_weight: float = 0.5
    # MultiRocket's additions (conv_features.py): the first difference as a second input, and more poolings
    # than PPV ('ppv+mpv+mipv'); the feature budget `rocket` is shared among them
    rocket_diff: bool = False
    rocket_pooling: str = "ppv"
    # the features' ridge head also learns from the copies the augmentations above call fair (flip > 0: negated;
    # reverse > 0: reversed in time; both: both and both at once), leaving a series out with its copies
    rocket_augment: bool = False

    def validate(self) -> None:
        if self.model != "ts-transformer":
            raise ConfigError(f"train: series models are ts-transformer, got {self.model!r}")
        if self.epochs <= 0 or (self.max_steps is not None and self.max_steps < 1):
            raise ConfigError("train: epochs must be > 0 and max_steps >= 1")
        if self.batch_size < 2 or not 0 < self.learning_rate < 1 or self.weight_decay < 0:
            raise ConfigError("train: batch_size >= 2, learning_rate in (0, 1), weight_decay >= 0")
        if not 0 <= self.warmup < 1 or not 0 <= self.label_smoothing < 1:
            raise ConfigError("train: warmup and label_smoothing must be in [0, 1)")
        if not 0 <= self.shift < 1 or not 0 <= self.jitter <= 1:
            raise ConfigError("train: shift must be in [0, 1) and jitter in [0, 1]")
        if not 0 <= self.flip <= 1 or not 0 <= self.reverse <= 1:
            raise ConfigError("train: flip and reverse are probabilities in [0, 1]")
        if (self.patience is not None and self.patience < 1) or (self.limit_train is not None and self.limit_train < 2):
            raise ConfigError("train: patience >= 1 and limit_train >= 2")
        if not 0 <= self.ema < 1:
            raise ConfigError("train: ema must be in [0, 1) (0: no weight average)")
        if not 1 <= self.members <= 8:
            raise ConfigError("train: members must be between 1 and 8")
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise ConfigError("train: threads must be between 1 and 256")
        if self.rocket_augment and not (self.rocket and (self.flip > 0 or self.reverse > 0)):
            raise ConfigError("train: rocket_augment fits the features on the flipped or reversed copies the config "
                              "calls fair: it needs rocket > 0 and flip or reverse > 0")

    def rocket_augments(self) -> tuple[str, ...]:
        """The copies the features' head learns from (conv_features.augmented): none unless rocket_augment."""
        return tuple(a for a in ("flip", "reverse") if getattr(self, a) > 0) if self.rocket_augment else ()

    def shape(self, length: int, channels: int, classes: int) -> Any:
        from edgeslm.models.ts_transformer import TsTransformerShape

        return TsTransformerShape(length=length, channels=channels, classes=classes, patch=min(self.patch, length),
                                  stride=min(self.stride, self.patch, length), stem=self.stem,
                                  stem_layers=self.stem_layers, d_model=self.d_model,
                                  heads=self.heads, layers=self.layers, ff=self.ff, dropout=self.dropout,
                                  normalize=self.normalize, members=self.members, rocket=self.rocket,
                                  rocket_stride=self.rocket_stride, rocket_weight=self.rocket_weight,
                                  rocket_diff=self.rocket_diff, rocket_pooling=self.rocket_pooling)


def is_series_run(run: Path) -> bool:
    folder = RunFolder(Path(run))
    if not folder.is_run():
        return False
    try:
        return json.loads(folder.record_file.read_text(encoding="utf-8")).get("task") == TASK
    except (OSError, ValueError, AttributeError):
        return False


def read_series_run(run: Path) -> dict[str, Any]:
    folder = RunFolder(Path(run))
    if not is_series_run(run):
        raise BundleError(f"{run}: not a time-series training run; train one with `edgeslm train --model ts-transformer`")
    return json.loads(folder.record_file.read_text(encoding="utf-8"))


def load_series_model(run: Path) -> tuple[Any, dict[str, Any]]:
    """The trained torch model (eval mode) and its run record."""
    from safetensors.torch import load_file

    from edgeslm.models.ts_transformer import TsTransformerShape, build

    record = read_series_run(run)
    model = build(TsTransformerShape.from_dict(record["shape"]))
    model.load_state_dict(load_file(str(RunFolder(Path(run)).weights)))
    return model.eval(), record


def predict_logits(model: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """logits [n, K] of float32 x [n, L, C], eval mode, no grad."""
    import torch

    if hasattr(model, "eval"):  # a module, or a method of one (TsEnsemble.transformers)
        model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.shape.classes), np.float32)


def augment(x: Any, shift: float, jitter: float, generator: Any, flip: float = 0.0, reverse: float = 0.0) -> Any:
    """x [B, L, C]: each series rolled by its own random offset and given Gaussian noise; with
    probability `flip` negated, with probability `reverse` reversed in time."""
    import torch

    b, length, c = x.shape
    if reverse > 0:
        back = torch.rand(b, generator=generator) < reverse
        x = torch.where(back[:, None, None], x.flip(1), x)
    if flip > 0:
        x = x * torch.where(torch.rand(b, generator=generator) < flip, -1.0, 1.0)[:, None, None]
    if shift > 0:
        most = max(1, int(length * shift))
        k = torch.randint(-most, most + 1, (b, 1), generator=generator)
        idx = (torch.arange(length)[None, :] - k) % length  # [B, L]
        x = x.gather(1, idx[:, :, None].expand(b, length, c))
    if jitter > 0:
        x = x + torch.randn(x.shape, generator=generator) * jitter * x.std(dim=1, keepdim=True)
    return x


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_series(config: SeriesTrainConfig, out: Path, progress: bool = False, data: Any = None) -> dict[str, Any]:
    """`data`: splits to train on instead of `config.data`'s (a SeriesSplits; cross-validation folds).
    With `members` > 1, each member trains the same way on the same splits from seed `seed + i`
    (member 0 is exactly the single model's run) and chooses its own epoch."""
    import torch
    from safetensors.torch import save_file

    from edgeslm.data.series import load_series, write_series_jsonl
    from edgeslm.models.ts_transformer import build

    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    if data is None:
        data = load_series(config.data, config.seed)
    x_train, y_train = data.x_train, data.y_train
    if config.limit_train is not None and config.limit_train < len(y_train):
        keep = np.random.default_rng(config.seed).permutation(len(y_train))[: config.limit_train]
        x_train, y_train = x_train[keep], y_train[keep]
    if config.refit:
        x_train, y_train = np.concatenate([x_train, data.x_val]), np.concatenate([y_train, data.y_val])
    shape = config.shape(data.length, data.channels, len(data.labels))
    steps_per_epoch = math.ceil(len(y_train) / config.batch_size)
    total = max(1, math.ceil(config.epochs * steps_per_epoch))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = max(1, int(config.warmup * total))
    bar = _progress(total * config.members, progress)
    fits = [_fit(config, shape, data, x_train, y_train, config.seed + i, total, warmup, bar) for i in range(config.members)]
    if bar is not None:
        bar.close()
    model = build(shape)
    ensemble = hasattr(model, "members")
    for member, fit in zip(model.members if ensemble else [model], fits, strict=True):
        member.load_state_dict(fit["state"])
    rocket = None
    if config.rocket:
        from edgeslm.models.conv_features import fit as fit_rocket

        rocket_started = time.perf_counter()
        rocket = fit_rocket(model.rocket, x_train, y_train, config.seed, augment=config.rocket_augments())
        rocket["seconds"] = round(time.perf_counter() - rocket_started, 1)
    model.eval()
    splits = (("val", data.x_val, data.y_val), ("test", data.x_test, data.y_test))
    metrics = {name: _accuracy(model, x, y) for name, x, y in splits}
    if rocket is not None:  # each kind alone, on the same series: what the combination adds
        for name, x, y in splits:
            metrics[name]["parts"] = {"transformers": _accuracy(model.transformers, x, y)["accuracy"],
                                      "rocket": _accuracy(model.rocket, x, y)["accuracy"]}
    if config.refit:
        metrics["val"]["seen_in_training"] = True

    run = RunFolder(Path(out))
    run.model.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run.weights))
    write_series_jsonl(run.split("val"), data.x_val, data.y_val, data.labels)
    write_series_jsonl(run.split("test"), data.x_test, data.y_test, data.labels)
    one = config.members == 1
    record = {
        "task": TASK, "model": config.model, "config": config.to_dict(), "shape": shape.to_dict(),
        "labels": data.labels, "series": {"length": data.length, "channels": data.channels},
        "params": int(sum(p.numel() for p in model.parameters())),
        "dataset": {**data.meta, "sizes": {**data.sizes(), "train": len(y_train)}},
        "schedule": {"steps": total, "epochs": config.epochs, "steps_per_epoch": steps_per_epoch, "warmup": warmup},
        "steps": sum(f["steps"] for f in fits),
        "best_step": fits[0]["best_step"] if one else [f["best_step"] for f in fits],
        "history": fits[0]["history"] if one else [f["history"] for f in fits],
        "metrics": metrics, "train_seconds": round(time.perf_counter() - started, 1),
    }
    if rocket is not None:
        record["rocket"] = rocket
    if not one:
        record["members"] = [{"seed": f["seed"], "best_step": f["best_step"], "steps": f["steps"],
                              "val_accuracy": f["val_accuracy"]} for f in fits]
    run.write(record)
    return record


def _fit(config: SeriesTrainConfig, shape: Any, data: Any, x_train: np.ndarray, y_train: np.ndarray, seed: int,
         total: int, warmup: int, bar: Any) -> dict[str, Any]:
    """Train one model from `seed` for `total` steps; its best validation epoch's weights and history."""
    import torch

    from edgeslm.models.ts_transformer import TsTransformer

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TsTransformer(replace(shape, members=1))
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n == "pos"]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n != "pos"]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    averaged = None
    if config.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
    kept = model if averaged is None else averaged.module  # what validation scores and what is saved

    best: tuple[float, float] = (-1.0, -math.inf)  # (val accuracy, -val loss): small val sets tie on accuracy
    best_state, best_step, history, step, stale = None, 0, [], 0, 0
    while step < total:
        model.train()
        order = torch.randperm(len(yt), generator=generator)
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2:  # BatchNorm needs two series
                continue
            xb = augment(xt[idx], config.shift, config.jitter, generator, config.flip, config.reverse)
            loss = loss_fn(model(xb), yt[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
            step += 1
            if bar is not None:
                bar.update(1)
            if step >= total:
                break
        if config.refit:  # nothing to choose: the last weights are kept
            continue
        val_logits = predict_logits(kept, data.x_val)
        val_acc = float((val_logits.argmax(-1) == data.y_val).mean())
        val_loss = float(loss_fn(torch.from_numpy(val_logits), torch.from_numpy(data.y_val)))
        history.append({"step": step, "val_accuracy": round(val_acc, 4), "val_loss": round(val_loss, 4),
                        "train_loss": round(float(loss.detach()), 4)})
        if (val_acc, -val_loss) > best:
            best, best_step, stale = (val_acc, -val_loss), step, 0
            best_state = {k: v.detach().clone() for k, v in kept.state_dict().items()}
        else:
            stale += 1
            if config.patience is not None and stale >= config.patience:
                break
    if config.refit:
        best_step, best_state = step, {k: v.detach().clone() for k, v in kept.state_dict().items()}
        best = (float((predict_logits(kept, data.x_val).argmax(-1) == data.y_val).mean()), 0.0)
    assert best_state is not None
    return {"seed": seed, "state": best_state, "best_step": best_step, "history": history, "steps": step,
            "val_accuracy": round(best[0], 4)}


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    predicted = predict_logits(model, x).argmax(-1)
    return {"n": len(y), "accuracy": round(float((predicted == y).mean()), 4)}


def _progress(total: int, on: bool) -> Any:
    if not on:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", unit="step")
