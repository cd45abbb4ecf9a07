"""Fit the n-gram head (formats/ngram_head.py) on a run's training split: the vocabulary is every
n-gram in at least `min_count` training sentences, weighted as runtime/engines/ngrams.py weighs them,
and a multinomial logistic regression over it is fitted by L-BFGS with an L2 penalty (`c` as in
scikit-learn's LogisticRegression: the larger, the weaker the penalty). Deterministic: no sampling.
`with_floor` then sets the least confidence it may answer at, against the encoder on the validation split."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.formats.ngram_head import NgramHead
from edgeslm.runtime.engines.ngrams import NgramClassifier, ngrams, weigh

# the head's answers may lose this little of what the encoder had right on the validation split
FLOOR_PRECISION = 0.995


@dataclass(frozen=True)
class NgramHeadConfig(Config):
    chars: list = field(default_factory=lambda: [2, 4])
    words: list = field(default_factory=lambda: [1, 2])
    min_count: int = 2  # sentences a feature must appear in
    c: float = 20.0
    steps: int = 300  # L-BFGS iterations at most

    def validate(self) -> None:
        for name, high in (("chars", 8), ("words", 4)):
            span = getattr(self, name)
            if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)
                    and 1 <= span[0] <= span[1] <= high):
                raise ConfigError(f"NgramHeadConfig.{name}: [shortest, longest] within 1..{high}")
        if self.min_count < 1 or self.steps < 1 or not self.c > 0:
            raise ConfigError("NgramHeadConfig: min_count and steps at least 1, c above 0")


def with_floor(head: NgramHead, val: Sequence[tuple[str, str]], encoder_right: Sequence[bool],
               precision: float = FLOOR_PRECISION) -> tuple[NgramHead, dict[str, Any]]:
    """The head with its floor: the lowest confidence at which, on `val`, its answers lost at most 1 -
    `precision` of them where the encoder (`encoder_right`, per row) was right (evaluate/calibrate.py
    quick_threshold); and what that covered and lost there."""
    from edgeslm.evaluate.calibrate import quick_threshold

    clf = NgramClassifier(head)
    probs = np.array([clf.probs(t) for t, _ in val])
    conf = probs.max(axis=1)
    right = np.array([clf.labels[int(k)] == label for k, (_, label) in zip(probs.argmax(axis=1), val, strict=True)])
    had = np.asarray(encoder_right, dtype=bool)
    floor = quick_threshold(conf, right, had, precision)
    taken = conf >= floor
    return replace(head, floor=floor), {"floor": floor, "precision": precision, "rows": len(val),
                                        "answers": round(float(taken.mean()), 4),
                                        "lost": int((taken & had & ~right).sum()), "wrong": int((taken & ~right).sum()),
                                        "encoder_wrong": int((taken & ~had).sum())}


def fit_ngram_head(texts: Sequence[str], targets: Sequence[str], labels: Sequence[str],
                   config: NgramHeadConfig | None = None, val: Sequence[tuple[str, str]] = (),
                   say: Callable[[str], Any] | None = None) -> tuple[NgramHead, dict[str, Any]]:
    """The head for `labels` fitted on `texts` labelled `targets`; `val`: (text, label) rows it is scored on."""
    import torch

    config = config or NgramHeadConfig()
    say = say or (lambda _: None)
    unknown = sorted(set(targets) - set(labels))
    if unknown:
        raise ConfigError(f"the n-gram head: training labels {unknown[:5]} are not among the bundle's labels")
    chars, words = (config.chars[0], config.chars[1]), (config.words[0], config.words[1])
    counts = [ngrams(t, chars, words) for t in texts]
    df: Counter = Counter()
    for c in counts:
        df.update(c.keys())
    features = sorted(f for f, n in df.items() if n >= config.min_count)
    if not features:
        raise ConfigError("the n-gram head: no n-gram appears in enough training sentences")
    n = len(texts)
    idf = np.asarray([math.log((1 + n) / (1 + df[f])) + 1.0 for f in features], dtype=np.float32)
    index = {f: i for i, f in enumerate(features)}
    rows, cols, vals = [], [], []
    for r, c in enumerate(counts):
        ids, values = weigh(c, index, idf)
        rows.extend([r] * len(ids))
        cols.extend(ids.tolist())
        vals.extend(values.tolist())
    say(f"fitting the n-gram head: {n} sentences, {len(features)} n-grams, {len(labels)} labels")
    torch.manual_seed(0)
    x = torch.sparse_coo_tensor(torch.tensor([rows, cols]), torch.tensor(vals, dtype=torch.float32),
                                (n, len(features)), check_invariants=True).coalesce()
    y = torch.tensor([list(labels).index(t) for t in targets])
    weight = torch.zeros(len(features), len(labels), requires_grad=True)
    bias = torch.zeros(len(labels), requires_grad=True)
    penalty = 1.0 / (2.0 * config.c * n)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=config.steps, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.sparse.mm(x, weight) + bias, y) + penalty * (weight ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(torch.sparse.mm(x, weight) + bias, y))
    head = NgramHead(tuple(labels), chars, words, tuple(features), idf, weight.detach().numpy().astype(np.float32),
                     bias.detach().numpy().astype(np.float32))
    # the weights as stored (float16), scored as the device runs them
    head = NgramHead.from_dict(head.to_dict())
    report: dict[str, Any] = {"config": config.to_dict(), "sentences": n, "features": len(features), "loss": round(loss, 5)}
    if val:
        clf = NgramClassifier(head)
        right = sum(clf.labels[int(clf.logits(t).argmax())] == label for t, label in val)
        report["val_accuracy"] = round(right / len(val), 4)
        say(f"n-gram head: validation accuracy {report['val_accuracy']:.4f} on {len(val)} sentences")
    return head, report
