import pytest

from edgeslm.evaluate.metrics import classification_metrics, latency_summary


def test_perfect_and_wrong_predictions():
    m = classification_metrics(["a", "b", "a"], ["a", "b", "a"], ["a", "b"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["n"] == 3
    m = classification_metrics(["a", "b"], ["b", "a"], ["a", "b"])
    assert m["accuracy"] == 0.0 and m["macro_f1"] == 0.0
    assert m["confusions"][0]["count"] == 1


def test_macro_f1_by_hand():
    # a: tp=1 fp=1 fn=1 -> p=.5 r=.5 f1=.5 ; b: tp=1 fp=1 fn=1 -> .5 ; c: tp=1 fp=0 fn=0 -> 1
    truth = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "a", "b", "c"]
    m = classification_metrics(truth, pred, ["a", "b", "c", "unused"])
    assert m["macro_f1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3, abs=1e-4)
    assert "unused" not in m["per_label"]


def test_latency_percentiles_in_ms():
    s = latency_summary([0.001] * 98 + [0.010, 0.100])
    assert s["p50_ms"] == pytest.approx(1.0)
    assert s["max_ms"] == pytest.approx(100.0)
    assert latency_summary([]) == {}
