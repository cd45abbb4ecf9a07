"""The learned slot tagger (formats/slot_tagger.py) on the device: BIO tags per word piece from the token
states the early-exit encoder's first segment already gives every request, one small matrix product,
then character spans through the tokenizer's offsets. Pure numpy; no torch."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgeslm.errors import BundleError
from edgeslm.formats.slot_tagger import TaggerHead

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class TaggedSpan:
    kind: str  # name | area | floor
    start: int  # character offsets in the request's text, widened to whole words
    end: int
    score: float  # the mean probability of the span's tags


def window_features(hidden: np.ndarray, mask: np.ndarray, window: int) -> np.ndarray:
    """[batch, seq, hidden] states and [batch, seq] mask -> [batch, seq, (2 * window + 1) * hidden]: each
    word piece's state beside its neighbours' (offsets -window .. window), zeros past either end."""
    h = hidden * mask[..., None].astype(hidden.dtype)  # padding contributes nothing, as in training
    seq = h.shape[1]
    blocks = []
    for k in range(-window, window + 1):
        shifted = np.zeros_like(h)
        if k < 0:
            shifted[:, -k:] = h[:, :seq + k]
        elif k > 0:
            shifted[:, :seq - k] = h[:, k:]
        else:
            shifted = h
        blocks.append(shifted)
    return np.concatenate(blocks, axis=-1)


def decode(tags: list[str], probs: np.ndarray, offsets: list[tuple[int, int]], text: str) -> list[TaggedSpan]:
    """Spans of whole words: each word's kind is the likeliest of O, name, area, floor over the mean of its
    word pieces' tag probabilities (`probs` [pieces, tags], B and I summed), and neighbouring words of one
    kind make one span. Deciding per word, not per piece, keeps a typo's pieces together ("flor" ->
    "fl", "##or"); ignoring B is safer than trusting it: on held-out names the tagger began a second span
    inside one name ("breakfast" "nook") far more often than two names of one kind stood side by side.
    Special tokens (offsets (0, 0)) take no part."""
    kinds = ["O", *dict.fromkeys(t.partition("-")[2] for t in tags[1:])]
    column = [kinds.index(t.partition("-")[2] or "O") for t in tags]
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    sums = np.zeros((len(words), len(kinds)))
    counts = np.zeros(len(words))
    w = 0
    for i, (a, b) in enumerate(offsets):
        if a == b:  # [CLS], [SEP]
            continue
        while w < len(words) and words[w][1] <= a:
            w += 1
        if w == len(words):
            break
        np.add.at(sums[w], column, probs[i])
        counts[w] += 1
    spans: list[TaggedSpan] = []
    kind, first, scores = 0, 0, []
    for j in range(len(words) + 1):
        k = int(sums[j].argmax()) if j < len(words) and counts[j] else 0
        if k != kind or j == len(words):
            if kind:
                spans.append(TaggedSpan(kinds[kind], words[first][0], words[j - 1][1], float(np.mean(scores))))
            kind, first, scores = k, j, []
        if k:
            scores.append(sums[j, k] / counts[j])
    return spans


class SlotTagger:
    """tag(hidden, mask, encodings, texts) -> per text, its tagged spans."""

    def __init__(self, head: TaggerHead, layers: int, hidden_size: int):
        if head.layers != layers or head.hidden_size != hidden_size:
            raise BundleError(f"the slot tagger reads layer {head.layers} states {head.hidden_size} wide; the first "
                              f"segment gives layer {layers} states {hidden_size} wide")
        self.head = head
        self.tags = list(head.tags)

    def logits(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[batch, seq, hidden], [batch, seq] -> [batch, seq, tags]."""
        return window_features(hidden, mask, self.head.window) @ self.head.weight + self.head.bias

    def tag(self, hidden: np.ndarray, mask: np.ndarray, offsets: list[list[tuple[int, int]]],
            texts: list[str]) -> list[list[TaggedSpan]]:
        probs = softmax(self.logits(hidden, mask))
        return [decode(self.tags, probs[row, :len(offs)], offs, text)
                for row, (offs, text) in enumerate(zip(offsets, texts, strict=True))]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
