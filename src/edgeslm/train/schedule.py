"""How long to train and how much of each text to read, sized to the data set (pure functions).

A fixed 1.5 epochs is plenty for the 20,000 ha-intents commands (about 900 steps) and far too little
for a user's 600 statements (21 steps measured, macro-F1 0.33; 10 epochs reached 0.51), so small sets
get a floor of optimizer steps, bounded in epochs, and early stopping only after that floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The window never goes below what the built-in smart-home runs always used, and never above what
# trains in minutes on a 2-core CPU: a batch of 32 x 256 tokens is about 8x the cost of 32 x 48.
MIN_WINDOW = 48
MAX_WINDOW = 256


def token_window(lengths: Sequence[int], model_window: int, coverage: float = 0.99) -> int:
    """The smallest multiple of 16 that holds `coverage` of the texts whole, in [48, min(256, model's)].

    `lengths` are token counts with the special tokens; the rest are truncated and counted."""
    cap = max(8, min(MAX_WINDOW, model_window))
    if not lengths:
        return min(MIN_WINDOW, cap)
    ordered = sorted(lengths)
    covered = ordered[min(len(ordered) - 1, math.ceil(coverage * len(ordered)) - 1)]
    return max(min(MIN_WINDOW, cap), min(cap, 16 * math.ceil(covered / 16)))


@dataclass(frozen=True)
class Schedule:
    total: int  # optimizer steps
    steps_per_epoch: int
    eval_every: int
    stop_after: int  # early stopping may end training only from this step on

    @property
    def epochs(self) -> float:
        return round(self.total / self.steps_per_epoch, 2)

    def to_dict(self) -> dict[str, float]:
        return {"steps": self.total, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "eval_every": self.eval_every, "early_stopping_from": self.stop_after}


def plan(n_train: int, batch_size: int, epochs: float, min_steps: int, max_epochs: float,
         max_steps: int | None, eval_every: int) -> Schedule:
    """`epochs` passes, but at least `min_steps` steps unless that means more than `max_epochs`
    passes; `max_steps` caps it all. Small sets are validated once an epoch (their validation
    split is small and cheap), large ones every `eval_every` steps."""
    per_epoch = max(1, n_train // batch_size)
    total = max(1, int(per_epoch * epochs))
    total = max(total, min(min_steps, int(per_epoch * max_epochs)))
    if max_steps:
        total = min(total, max_steps)
    every = max(1, min(eval_every, per_epoch))
    return Schedule(total=total, steps_per_epoch=per_epoch, eval_every=every, stop_after=min(total, min_steps))
