"""The ONNX engine on the tiny synthetic bundle: its fixed weights pick label i for texts with word i."""

import pytest

from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    return OnnxClassifier.from_bundle(open_bundle(tiny_bundle), threads=1)


def test_predicts_what_the_weights_say(clf):
    texts = ["turn on the kitchen lights", "please turn the lamp OFF", "what is the weather like", "hello"]
    assert [p["label"] for p in clf.predict(texts)] == ["TurnOn", "TurnOff", "Weather", "TurnOn"]
    assert clf.predict(["hello"])[0]["score"] == pytest.approx(1 / 3)  # no keyword: equal logits


def test_padding_does_not_change_a_prediction(clf):
    # The short text is padded to the long one's width in a batch; the masked mean must ignore the pads.
    short, long = "lights on", "what is the weather like in the kitchen please"
    assert clf.logits([short, long])[0] == pytest.approx(clf.logits([short])[0])


def test_batch_and_single_agree(clf):
    texts = ["turn on the kitchen light", "what time is it", "set a timer for five minutes named pasta"]
    batch = clf.predict(texts)
    singles = [clf.predict([t])[0] for t in texts]
    assert [b["label"] for b in batch] == [s["label"] for s in singles]
    for b, s in zip(batch, singles, strict=True):
        assert b["score"] == pytest.approx(s["score"], abs=1e-4)
        assert 0 < b["score"] <= 1


def test_bad_requests_raise_value_errors(clf):
    with pytest.raises(ValueError, match="non-empty"):
        clf.predict([""])
    with pytest.raises(ValueError, match="limit"):
        clf.predict(["a" * 10_000])


def test_long_text_is_truncated_not_crashing(clf):
    long = " ".join(["please turn on the lights in the kitchen"] * 40)
    assert clf.predict([long])[0]["label"] == "TurnOn"
    # Past max_length (16 tokens) a keyword is cut off: truncation really happens.
    assert clf.predict(["please " * 30 + "weather"])[0]["label"] == "TurnOn"
    assert clf.predict(["please " * 5 + "weather"])[0]["label"] == "Weather"


class FeedSpy:
    """Stands in front of the ONNX Runtime session (not our code) to record what the model is fed."""

    def __init__(self, session):
        self.session, self.fed = session, []

    def run(self, outputs, feeds):
        self.fed.append({name: array.copy() for name, array in feeds.items()})
        return self.session.run(outputs, feeds)


def spied(engine: OnnxClassifier) -> FeedSpy:
    engine.session = spy = FeedSpy(engine.session)
    return spy


LONG = " ".join(["on"] * 10 + ["off"] * 30)  # 40 words; max_length 16 keeps [CLS], the first 14 words, [SEP]
KEPT = " ".join(["on"] * 10 + ["off"] * 4)


@pytest.mark.parametrize("batch", [False, True])
def test_a_long_text_is_fed_as_its_first_max_length_tokens(tiny_bundle, batch):
    engine = OnnxClassifier.from_bundle(open_bundle(tiny_bundle), threads=1)
    spy = spied(engine)
    texts = [LONG, "lamp off"] if batch else [LONG]
    logits = engine.logits(texts)
    assert spy.fed[0]["input_ids"].shape == (len(texts), 16)  # max_length tokens, not 42
    assert spy.fed[0]["attention_mask"][0].sum() == 16
    assert logits[0] == pytest.approx(engine.logits([KEPT])[0], abs=1e-6)  # the same as cutting it by hand
    assert engine.predict(texts)[0]["label"] == "TurnOn"  # untruncated, "off" would win 30 to 10


def test_the_engine_truncates_even_when_the_tokenizer_file_does_not(tiny_bundle, tmp_path):
    """Tokenizer files exported from a framework often carry no truncation: max_length from the manifest
    must still bound what reaches the model (the graph's position table ends there)."""
    import json

    bundle = open_bundle(tiny_bundle)
    config = json.loads(bundle.file("tokenizer.json").read_text())
    config["truncation"] = None
    plain = tmp_path / "tokenizer.json"
    plain.write_text(json.dumps(config))
    m = bundle.manifest
    engine = OnnxClassifier(bundle.model_path, plain, m.labels, m.tokenizer["max_length"], m.tokenizer["inputs"], 1)
    spy = spied(engine)
    assert engine.logits([LONG])[0] == pytest.approx(engine.logits([KEPT])[0], abs=1e-6)
    assert spy.fed[0]["input_ids"].shape == (1, 16)


def test_a_variant_without_token_type_ids_and_more_labels(make_tiny_bundle, tmp_path):
    labels = ["TurnOn", "TurnOff", "Weather", "Timer"]
    bundle = make_tiny_bundle(tmp_path / "b", labels=labels, max_length=8, inputs=["input_ids", "attention_mask"])
    clf = OnnxClassifier.from_bundle(open_bundle(bundle), threads=1)
    assert [i.name for i in clf.session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [p["label"] for p in clf.predict(["set kw3 please", "lights off"])] == ["Timer", "TurnOff"]
