"""Fitting the n-gram head (train/ngram_head.py) on real ha-intents sentences: it tells intents apart on
templates it never saw, the same fit gives the same head, and labels it does not know are refused."""

import numpy as np
import pytest

from edgeslm.data.ha_intents import HaIntentsConfig, build
from edgeslm.errors import ConfigError
from edgeslm.runtime.engines.ngrams import NgramClassifier
from edgeslm.train.ngram_head import NgramHeadConfig, fit_ngram_head

INTENTS = ["HassTurnOn", "HassTurnOff", "HassLightSet", "HassClimateGetTemperature", "HassStartTimer", "HassGetWeather"]


@pytest.fixture(scope="module")
def splits():
    sp = build(HaIntentsConfig())
    return [e for e in sp.train if e.label in INTENTS], [e for e in sp.val if e.label in INTENTS]


def test_the_head_tells_intents_apart_on_held_out_templates(splits):
    train, val = splits
    head, report = fit_ngram_head([e.text for e in train], [e.label for e in train], INTENTS, NgramHeadConfig(steps=100),
                                  val=[(e.text, e.label) for e in val])
    assert report["val_accuracy"] >= 0.9  # the whole split's 42 intents: 0.976 (2026-12-05)
    clf = NgramClassifier(head)
    right = np.mean([clf.labels[int(clf.probs(e.text).argmax())] == e.label for e in val])
    assert right == pytest.approx(report["val_accuracy"], abs=1e-4)  # reported as the device scores it
    again, _ = fit_ngram_head([e.text for e in train], [e.label for e in train], INTENTS, NgramHeadConfig(steps=100))
    assert again.features == head.features and np.array_equal(again.weight, head.weight)


def test_labels_outside_the_bundle_and_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="not among the bundle's labels"):
        fit_ngram_head(["turn on the lamp", "turn off the lamp"], ["on", "off"], ["on"])
    with pytest.raises(ConfigError, match="chars"):
        NgramHeadConfig(chars=[3, 2])
    with pytest.raises(ConfigError, match="no n-gram appears"):
        fit_ngram_head(["a b", "c d"], ["on", "off"], ["on", "off"])


def test_the_floor_is_where_the_head_stops_losing_what_the_encoder_had_right(splits):
    from edgeslm.train.ngram_head import with_floor

    train, val = splits
    head, _ = fit_ngram_head([e.text for e in train], [e.label for e in train], INTENTS, NgramHeadConfig(steps=100))
    rows = [(e.text, e.label) for e in val]
    clf = NgramClassifier(head)
    conf = np.array([clf.probs(t).max() for t, _ in rows])
    right = np.array([clf.labels[int(clf.probs(t).argmax())] == label for t, label in rows])
    floored, report = with_floor(head, rows, [True] * len(rows))  # an encoder right on every row
    taken = conf >= floored.floor
    assert report["lost"] == (taken & ~right).sum() <= 0.005 * taken.sum()
    assert report["answers"] == pytest.approx(taken.mean(), abs=1e-4) and report["answers"] > 0.5
    assert np.array_equal(floored.weight, head.weight) and head.floor == 1.01
    # an encoder wrong wherever the head is: nothing to lose, the head may answer everything it is asked
    assert with_floor(head, rows, right.tolist())[0].floor == round(float(conf.min()), 4)
