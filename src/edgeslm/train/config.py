"""The one config of `edgeslm train`."""

from __future__ import annotations

from dataclasses import dataclass

from edgeslm.config import Config
from edgeslm.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig(Config):
    model: str = "minilm-l6"
    data: str = "ha-intents"
    seed: int = 13
    max_length: int | None = None  # tokens; None: sized to the training texts (train/schedule.py)
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06  # share of steps
    epochs: float = 1.5
    min_steps: int = 300  # small data sets train at least this long (early stopping only after it)...
    max_epochs: float = 20  # ...unless that means more passes than this
    max_steps: int | None = None  # caps epochs: a time budget on slow machines and in tests
    eval_every: int = 150
    patience: int = 3  # evaluations without a better validation score before stopping
    freeze_embeddings: bool = True  # keeps the pretrained vocabulary geometry; faster steps
    limit_train: int | None = None  # use only the first N shuffled train examples (tests, smoke runs)
    limit_eval: int | None = None
    threads: int | None = None

    def validate(self) -> None:
        if self.max_length is not None and not 8 <= self.max_length <= 512:
            raise ConfigError("train: max_length must be in [8, 512] (or null: sized to the data)")
        if self.min_steps < 1 or self.max_epochs <= 0:
            raise ConfigError("train: min_steps must be >= 1 and max_epochs > 0")
        if self.batch_size < 1 or self.eval_every < 1 or self.patience < 1:
            raise ConfigError("train: batch_size, eval_every and patience must be >= 1")
        if not 0 < self.learning_rate < 1:
            raise ConfigError("train: learning_rate must be in (0, 1)")
        if self.epochs <= 0 or (self.max_steps is not None and self.max_steps < 1):
            raise ConfigError("train: epochs must be > 0 and max_steps >= 1")
        if not 0 <= self.warmup < 1:
            raise ConfigError("train: warmup must be in [0, 1)")
