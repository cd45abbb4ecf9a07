"""The n-gram head (formats/ngram_head.py) run: a linear classifier over a command's character n-grams
(within each word, spaces around it) and word n-grams, weighted like TF-IDF (1 + log count, times the
feature's idf, each kind scaled to unit length), in the spirit of fastText. In numpy, about 40 µs a
command: the assistant's first look before the encoder, whose first segment alone costs ten times that.
Digits read as 0, so "set it to 40" and "set it to 75" share their n-grams.

`ngrams` is also what training counts (train/ngram_head.py), so the two cannot drift apart."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from edgeslm.formats.ngram_head import NgramHead

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|%")
_DIGIT = re.compile(r"\d")


def words_of(text: str) -> list[str]:
    return _WORD.findall(_DIGIT.sub("0", text.casefold()))


def ngrams(text: str, chars: tuple[int, int], words: tuple[int, int]) -> Counter:
    """Feature -> count: "c:" + a character n-gram of " word ", "w:" + a word n-gram."""
    ws = words_of(text)
    out: Counter = Counter()
    for w in ws:
        padded = f" {w} "
        for n in range(chars[0], chars[1] + 1):
            for i in range(len(padded) - n + 1):
                out["c:" + padded[i:i + n]] += 1
    for n in range(words[0], words[1] + 1):
        for i in range(len(ws) - n + 1):
            out["w:" + " ".join(ws[i:i + n])] += 1
    return out


def weigh(counts: Counter, index: dict[str, int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(feature indices, values) of the known features: (1 + log count) * idf, the character and the word
    features each scaled to unit length."""
    ids, values, kinds = [], [], []
    for feature, count in counts.items():
        i = index.get(feature)
        if i is not None:
            ids.append(i)
            values.append((1.0 + math.log(count)) * float(idf[i]))
            kinds.append(feature[0] == "c")
    v = np.asarray(values, dtype=np.float32)
    k = np.asarray(kinds, dtype=bool)
    for part in (k, ~k):
        norm = float(np.sqrt((v[part] ** 2).sum())) if part.any() else 0.0
        if norm > 0:
            v[part] /= norm
    return np.asarray(ids, dtype=np.int64), v


class NgramClassifier:
    def __init__(self, head: NgramHead):
        self.head = head
        self.labels = list(head.labels)
        self.index = {f: i for i, f in enumerate(head.features)}

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return weigh(ngrams(text, self.head.chars, self.head.words), self.index, self.head.idf)

    def logits(self, text: str) -> np.ndarray:
        """[labels] float32."""
        ids, values = self.vector(text)
        return values @ self.head.weight[ids] + self.head.bias

    def probs(self, text: str) -> np.ndarray:
        z = self.logits(text).astype(np.float64)
        p = np.exp(z - z.max())
        return p / p.sum()
