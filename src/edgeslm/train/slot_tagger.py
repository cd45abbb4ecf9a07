"""Train the learned slot tagger (build side: torch): BIO tags for name, area and floor per word piece, a
linear layer over the early-exit encoder's first-segment token states (formats/slot_tagger.py).

The states are computed by the bundle's own (quantized) first segment in ONNX Runtime, exactly what the
device computes, and the features by the device's own window_features. Sentences come from Home
Assistant's grammars with the slot values marked (data/ha_intents.slot_sentences): training templates
and training values, a share made noisy (typos, fillers) with the spans carried through; validation on
held-out templates and held-out values, clean and noisy. No evaluation set and no example home is used.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.config import Config
from edgeslm.data.ha_intents import SPAN_KINDS, slot_sentences
from edgeslm.data.noise import add_noise_spans
from edgeslm.errors import ConfigError
from edgeslm.formats.early_exit import HIDDEN_OUT
from edgeslm.formats.slot_tagger import TaggerHead
from edgeslm.runtime.engines.onnx import encode_texts, load_session, load_tokenizer
from edgeslm.runtime.engines.slot_tagger import decode, softmax, window_features

TAGS = ("O", *(f"{p}-{k}" for k in SPAN_KINDS for p in ("B", "I")))
IGNORE = -100  # special tokens: no tag to learn


@dataclass(frozen=True)
class SlotTaggerConfig(Config):
    sentences: int = 6000  # training sentences (the first segment runs over them once)
    val_sentences: int = 800  # held-out templates and values, half of them made noisy
    noisy_share: float = 0.5  # training sentences given typos and fillers, spans carried through
    window: int = 2  # neighbouring word pieces on each side whose states a tag also sees
    steps: int = 300  # full-batch AdamW steps
    learning_rate: float = 0.01
    weight_decay: float = 0.01
    seed: int = 29

    def validate(self) -> None:
        if self.sentences < 100 or self.val_sentences < 10:
            raise ConfigError("slot tagger: sentences >= 100 and val_sentences >= 10")
        if not 0.0 <= self.noisy_share <= 1.0:
            raise ConfigError("slot tagger: noisy_share is a share in [0, 1]")
        if not 0 <= self.window <= 4 or self.steps < 1:
            raise ConfigError("slot tagger: window in [0, 4], steps >= 1")
        if not 0 < self.learning_rate < 1 or self.weight_decay < 0:
            raise ConfigError("slot tagger: learning_rate in (0, 1), weight_decay >= 0")


Spans = list[tuple[int, int, str]]


def tagged_sentences(n: int, seed: int, heldout: bool, noisy_share: float) -> list[tuple[str, Spans, bool]]:
    """(text, spans, noisy) rows; a share `noisy_share` made noisy, spans carried through."""
    rng = random.Random(seed + 1)
    out = []
    for s in slot_sentences(n, seed, heldout):
        if rng.random() < noisy_share:
            text, spans = add_noise_spans(s.text, list(s.spans), rng)
            out.append((text, spans, True))
        else:
            out.append((s.text, list(s.spans), False))
    return out


def piece_tags(offsets: Sequence[tuple[int, int]], spans: Spans) -> list[int]:
    """Each word piece's tag index: B for the first piece inside a span, I for the rest, O outside;
    IGNORE for special tokens."""
    out = []
    opened: set[int] = set()
    for a, b in offsets:
        if a == b:
            out.append(IGNORE)
            continue
        tag = 0
        for j, (s, e, kind) in enumerate(spans):
            if a < e and s < b:
                tag = TAGS.index(f"{'I' if j in opened else 'B'}-{kind}")
                opened.add(j)
                break
        out.append(tag)
    return out


class SegmentStates:
    """The first segment's token states for texts, from the bundle's own ONNX file."""

    def __init__(self, segment: Path, tokenizer_file: Path, inputs: Sequence[str], max_length: int):
        self.session, _ = load_session(segment, spin=False)
        self.tokenizer = load_tokenizer(tokenizer_file, max_length)
        self.inputs = list(inputs)
        self.first_inputs = [i.name for i in self.session.get_inputs()]

    def features(self, texts: Sequence[str], window: int, batch: int = 64) -> tuple[list[np.ndarray], list[Any]]:
        """Per text, [pieces, (2 * window + 1) * hidden] features, and its word pieces' offsets."""
        feats, offsets = [], []
        for i in range(0, len(texts), batch):
            chunk = list(texts[i:i + batch])
            feeds = encode_texts(self.tokenizer, chunk, self.inputs)
            hidden = self.session.run([HIDDEN_OUT], {n: feeds[n] for n in self.first_inputs})[0]
            x = window_features(hidden, feeds["attention_mask"], window)
            for row, e in enumerate(self.tokenizer.encode_batch(chunk)):
                feats.append(x[row, :len(e.offsets)])
                offsets.append(e.offsets)
        return feats, offsets


def fit_slot_tagger(segment: Path, tokenizer_file: Path, inputs: Sequence[str], max_length: int, layers: int,
                    hidden_size: int, config: SlotTaggerConfig | None = None,
                    say: Callable[[str], Any] | None = None) -> tuple[TaggerHead, dict[str, Any]]:
    """The tagger head for the first segment `segment` (ending after `layers` layers), and its report."""
    config = config or SlotTaggerConfig()
    say = say or (lambda _: None)
    states = SegmentStates(segment, tokenizer_file, inputs, max_length)
    train = tagged_sentences(config.sentences, config.seed, False, config.noisy_share)
    say(f"fitting the slot tagger on {len(train)} generated sentences ({config.noisy_share:.0%} noisy), first segment frozen")
    feats, offsets = states.features([t for t, _, _ in train], config.window)
    x = np.concatenate(feats)
    y = np.concatenate([piece_tags(o, spans) for o, (_, spans, _) in zip(offsets, train, strict=True)])
    keep = y != IGNORE
    weight, bias, stats = _fit(x[keep], y[keep], config)
    head = TaggerHead(layers, hidden_size, config.window, TAGS, weight, bias)
    val = tagged_sentences(config.val_sentences, config.seed + 1000, True, 0.5)
    report = {"config": config.to_dict(), "train_tokens": int(keep.sum()), **stats,
              "val": evaluate_spans(head, states, val)}
    say(f"slot tagger: held-out span F1 clean {report['val']['clean']['f1']:.3f}, noisy {report['val']['noisy']['f1']:.3f}")
    return head, report


def evaluate_spans(head: TaggerHead, states: SegmentStates, rows: list[tuple[str, Spans, bool]]) -> dict[str, Any]:
    """Span precision, recall and F1 (kind and the words covered both right), clean and noisy rows apart."""
    feats, offsets = states.features([t for t, _, _ in rows], head.window)
    counts = {"clean": [0, 0, 0], "noisy": [0, 0, 0]}  # true positives, predicted, expected
    for f, offs, (text, spans, noisy) in zip(feats, offsets, rows, strict=True):
        found = decode(list(head.tags), softmax(f @ head.weight + head.bias), offs, text)
        got = {(s.kind, _words(text, s.start, s.end)) for s in found}
        want = {(k, _words(text, s, e)) for s, e, k in spans}
        c = counts["noisy" if noisy else "clean"]
        c[0] += len(got & want)
        c[1] += len(got)
        c[2] += len(want)
    out = {}
    for name, (tp, pred, exp) in counts.items():
        p, r = tp / max(1, pred), tp / max(1, exp)
        out[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(1e-9, p + r), 4),
                     "spans": exp}
    return out


def _words(text: str, start: int, end: int) -> str:
    """The whole words a span covers, bare of punctuation at its ends: what a match is judged on."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end].strip(" .,!?;:").casefold()


def _fit(x: np.ndarray, y: np.ndarray, config: SlotTaggerConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Softmax regression [features -> tags] by full-batch AdamW: weight [features, tags], bias [tags]."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops lose to the thread hand-off on a shared 2-core machine (exit_heads.py)
    try:
        torch.manual_seed(config.seed)
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.from_numpy(y.astype(np.int64))
        layer = torch.nn.Linear(xt.shape[1], len(TAGS))
        optimizer = torch.optim.AdamW(layer.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        loss = torch.tensor(0.0)
        for _ in range(config.steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(layer(xt), yt)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = float((layer(xt).argmax(-1) == yt).float().mean())
            weight = layer.weight.detach().numpy().T.copy()
            bias = layer.bias.detach().numpy().copy()
    finally:
        torch.set_num_threads(threads)
    return weight, bias, {"train_loss": round(float(loss.detach()), 4), "train_token_accuracy": round(accuracy, 4)}
