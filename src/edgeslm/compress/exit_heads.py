"""Train early-exit heads with the backbone frozen (build side: torch): the mean-pooled hidden state
after a layer, into a linear layer over the labels. The backbone runs once over the training
sentences; each head is then softmax regression on those fixed features, seconds on a CPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeslm.export.onnx import model_inputs
from edgeslm.export.segments import segment_modules


def pooled_states(model: Any, tokenizer: Any, texts: Sequence[str], exits: Sequence[int], max_length: int,
                  batch: int = 64) -> dict[int, np.ndarray]:
    """exit layer -> [N, hidden] masked mean of the hidden states after that many encoder layers, computed
    by the same segment modules the export traces (the layers after the last exit never run)."""
    import torch

    modules = segment_modules(model, exits, [torch.nn.Identity() for _ in exits])[:-1]
    out: dict[int, list[np.ndarray]] = {n: [] for n in exits}
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            enc = tokenizer(list(texts[i:i + batch]), padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            args: tuple[Any, ...] = tuple(enc[n] for n in model_inputs(model, enc))
            for n, module in zip(exits, modules, strict=True):
                hidden, pooled, _ = module(*args)
                out[n].append(pooled.numpy())
                args = (hidden, enc["attention_mask"])
    return {n: np.concatenate(v) for n, v in out.items()}


def train_head(features: np.ndarray, labels: np.ndarray, n_labels: int, steps: int, learning_rate: float,
               weight_decay: float, seed: int) -> tuple[Any, dict[str, float]]:
    """A torch Linear [hidden -> n_labels] fitted to `features` [N, hidden] and `labels` [N] by full-batch
    AdamW on cross-entropy; and its accuracy on the features it was fitted to."""
    import torch

    # ops this small lose to the thread hand-off: 300 steps on 4000 x 384 took 3.6 s on one thread and
    # 18 s on two, on a busy 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(features, labels, n_labels, steps, learning_rate, weight_decay, seed)
    finally:
        torch.set_num_threads(threads)


def _fit(features: np.ndarray, labels: np.ndarray, n_labels: int, steps: int, learning_rate: float,
         weight_decay: float, seed: int) -> tuple[Any, dict[str, float]]:
    import torch

    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    head = torch.nn.Linear(x.shape[1], n_labels)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y)
        loss.backward()
        optimizer.step()
    head.eval()
    with torch.no_grad():
        accuracy = float((head(x).argmax(-1) == y).float().mean())
    return head, {"train_loss": round(float(loss.detach()), 4), "train_accuracy": round(accuracy, 4)}
