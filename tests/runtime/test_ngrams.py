"""The n-gram head's features and scores (runtime/engines/ngrams.py), checked against a direct count and a
dense product, on a head written by hand."""

from collections import Counter

import numpy as np
import pytest

from edgeslm.formats.ngram_head import NgramHead
from edgeslm.runtime.engines.ngrams import NgramClassifier, ngrams, weigh, words_of


def test_words_fold_case_read_digits_as_zero_and_keep_percent_and_apostrophes():
    assert words_of("Set the Kid's lamp to 45%, please!") == ["set", "the", "kid's", "lamp", "to", "00", "%", "please"]


def test_ngrams_are_character_grams_of_each_spaced_word_and_word_grams():
    got = ngrams("On on", (2, 3), (1, 2))
    assert got == Counter({"c: o": 2, "c:on": 2, "c:n ": 2, "c: on": 2, "c:on ": 2, "w:on": 2, "w:on on": 1})


def head(features, weight, idf=None, bias=(0.0, 0.0)):
    return NgramHead(("x", "y"), (2, 3), (1, 2), tuple(features), np.asarray(idf or [1.0] * len(features), np.float32),
                     np.asarray(weight, np.float32), np.asarray(bias, np.float32))


def test_weights_are_log_counts_times_idf_each_kind_of_unit_length():
    index = {"c:on": 0, "c: o": 1, "w:on": 2, "w:off": 3}
    ids, values = weigh(Counter({"c:on": 3, "c: o": 1, "w:on": 2, "c:zz": 5}), index, np.array([2.0, 1.0, 3.0, 1.0]))
    got = dict(zip(ids.tolist(), values.tolist(), strict=True))
    assert set(got) == {0, 1, 2}  # an unknown n-gram counts for nothing
    c = np.array([(1 + np.log(3)) * 2.0, 1.0])
    assert got[0] == pytest.approx(c[0] / np.linalg.norm(c), rel=1e-6)
    assert got[1] == pytest.approx(c[1] / np.linalg.norm(c), rel=1e-6)
    assert got[2] == pytest.approx(1.0)


def test_scores_are_the_dense_product_of_the_weighted_features():
    rng = np.random.default_rng(0)
    features = sorted(ngrams("turn on the lamp", (2, 3), (1, 2)) | ngrams("off", (2, 3), (1, 2)))
    w = rng.normal(size=(len(features), 2))
    idf = rng.uniform(1, 3, size=len(features)).tolist()
    clf = NgramClassifier(head(features, w, idf, bias=(0.5, -0.5)))
    text = "Turn the lamp OFF off"
    dense = np.zeros(len(features))
    counts = ngrams(text, (2, 3), (1, 2))
    for kind in "cw":
        part = {f: (1 + np.log(n)) * idf[features.index(f)] for f, n in counts.items() if f in features and f[0] == kind}
        norm = np.sqrt(sum(v * v for v in part.values()))
        for f, v in part.items():
            dense[features.index(f)] = v / norm
    want = dense @ w + np.array([0.5, -0.5])
    assert np.allclose(clf.logits(text), want, atol=1e-5)
    p = clf.probs(text)
    assert p.sum() == pytest.approx(1.0) and np.allclose(p, np.exp(want) / np.exp(want).sum(), atol=1e-5)


def test_a_command_with_no_known_ngram_gets_the_bias_alone():
    clf = NgramClassifier(head(["w:lamp"], [[1.0, 0.0]], bias=(0.2, 0.1)))
    assert np.allclose(clf.logits("zzz"), [0.2, 0.1])
