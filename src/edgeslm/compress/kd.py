"""Knowledge distillation: a student learns the fp32 teacher's softened logits plus the true labels.
One loop serves every torch modifier; pruning hooks in through `after_step`."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from edgeslm.compress.modifiers import KnowledgeDistillation
from edgeslm.data.records import Example


def distill(student: Any, teacher: Any, tokenizer: Any, rows: list[Example], labels: list[str],
            config: KnowledgeDistillation, steps: int, max_length: int, seed: int,
            after_step: Callable[[int], None] | None = None, progress: bool = True, desc: str = "distill") -> None:
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    label_id = {label: i for i, label in enumerate(labels)}
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.01)
    warm = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.05, (steps - s) / max(1, steps - warm))))
    rng = random.Random(seed)
    teacher.eval()
    student.train()
    t = config.temperature
    for step in tqdm(range(1, steps + 1), desc=desc, unit="step", disable=not progress):
        batch = rng.sample(rows, min(config.batch_size, len(rows)))
        enc = tokenizer([ex.text for ex in batch], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        target = torch.tensor([label_id[ex.label] for ex in batch])
        with torch.no_grad():
            soft = F.softmax(teacher(**enc).logits / t, dim=-1)
        logits = student(**enc).logits
        kd = F.kl_div(F.log_softmax(logits / t, dim=-1), soft, reduction="batchmean") * t * t
        loss = config.alpha * kd + (1 - config.alpha) * F.cross_entropy(logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if after_step is not None:
            after_step(step)
    student.eval()
