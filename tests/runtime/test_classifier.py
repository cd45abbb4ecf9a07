import pytest

from edgeslm.bundle.reader import open_bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def clf(session_bundle):
    return OnnxClassifier.from_bundle(open_bundle(session_bundle), threads=1)


def test_batch_and_single_agree(clf):
    texts = ["turn on the kitchen light", "what time is it", "set a timer for five minutes named pasta"]
    batch = clf.predict(texts)
    singles = [clf.predict([t])[0] for t in texts]
    assert [b["label"] for b in batch] == [s["label"] for s in singles]
    for b, s in zip(batch, singles):
        assert b["score"] == pytest.approx(s["score"], abs=1e-4)
        assert 0 < b["score"] <= 1


def test_bad_requests_raise_value_errors(clf):
    with pytest.raises(ValueError, match="non-empty"):
        clf.predict([""])
    with pytest.raises(ValueError, match="limit"):
        clf.predict(["a" * 10_000])


def test_long_text_is_truncated_not_crashing(clf):
    long = " ".join(["please turn on the lights in the kitchen"] * 40)
    assert clf.predict([long])[0]["label"] in clf.labels
