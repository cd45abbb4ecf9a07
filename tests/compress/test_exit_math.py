"""Threshold choice for early exit (compress/exit_math.py) on hand-made confidences: pure numpy, no model."""

import numpy as np
import pytest

from edgeslm.compress.exit_math import NEVER, choose_thresholds, outcome, route
from edgeslm.errors import ConfigError


def logits_for(labels, confidence, k=3):
    """[N, K] logits whose argmax is `labels` and whose softmax maximum is `confidence`."""
    out = np.zeros((len(labels), k))
    for i, (label, c) in enumerate(zip(labels, confidence, strict=True)):
        out[i, label] = np.log(c * (k - 1) / (1 - c))  # p = e^x / (e^x + k - 1)
    return out


def test_a_sample_leaves_at_the_first_exit_it_reaches():
    confidence = np.array([[0.9, 0.5, 0.5], [0.95, 0.95, 0.1]])  # [E=2, N=3]
    assert route(confidence, [0.8, 0.9]).tolist() == [0, 1, 2]
    assert route(confidence, [NEVER, 0.9]).tolist() == [1, 1, 2]
    assert route(confidence, [NEVER, NEVER]).tolist() == [2, 2, 2]


def test_outcome_counts_the_compute_each_sample_spends():
    confidence = np.array([[0.9, 0.1, 0.1, 0.1]])
    predictions = np.array([[0, 0, 0, 0], [0, 1, 1, 1]])
    got = outcome(confidence, predictions, np.array([0, 1, 1, 0]), [0.5, 0.5], [0.8])
    assert got.shares == (0.25, 0.75)
    assert got.cost == pytest.approx(0.5 + 0.5 * 0.75)
    assert got.accuracy == 0.75


def test_confident_right_heads_are_taken_and_wrong_ones_are_not():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 400)
    # exit 1: right and confident on the first half, confidently wrong on a tenth, unsure on the rest
    head1 = truth.copy()
    conf1 = np.full(400, 0.5)
    conf1[:200] = 0.99
    head1[200:240] = (truth[200:240] + 1) % 3
    conf1[200:240] = 0.97
    final = truth.copy()
    got = choose_thresholds([logits_for(head1, conf1)], final, truth, [1, 2], max_drop=0.0)
    assert got.accuracy == 1.0
    assert got.shares[0] == pytest.approx(0.5)  # exactly the 200 right-and-sure samples leave early
    assert got.thresholds[0] > 0.97
    # allowing a 10% drop takes the confidently wrong ones too: cheaper, still within the budget
    loose = choose_thresholds([logits_for(head1, conf1)], final, truth, [1, 2], max_drop=0.1)
    assert loose.cost < got.cost and loose.accuracy >= 0.9


def test_useless_heads_are_never_taken():
    truth = np.arange(300) % 3
    wrong = (truth + 1) % 3
    got = choose_thresholds([logits_for(wrong, np.full(300, 0.99)), logits_for(wrong, np.full(300, 0.9))], truth, truth,
                            [1, 1, 1], max_drop=0.005)
    assert got.thresholds == (NEVER, NEVER)
    assert got.shares == (0.0, 0.0, 1.0) and got.cost == pytest.approx(1.0) and got.accuracy == 1.0


def test_bad_settings_are_config_errors():
    x = [logits_for([0, 1], [0.9, 0.9])]
    with pytest.raises(ConfigError, match="max_drop"):
        choose_thresholds(x, np.array([0, 1]), np.array([0, 1]), [1, 1], max_drop=1.5)
    with pytest.raises(ConfigError, match="one non-negative cost per segment"):
        choose_thresholds(x, np.array([0, 1]), np.array([0, 1]), [1], max_drop=0.0)
