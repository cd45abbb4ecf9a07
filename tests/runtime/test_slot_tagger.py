"""The slot tagger on the device (runtime/engines/slot_tagger.py): the window features and the decoding
into word spans without a model; on the real early-exit bundle, a typo'd name found in a real sentence."""

import numpy as np
import pytest

from edgeslm.runtime.engines.slot_tagger import decode, window_features

TAGS = ["O", "B-name", "I-name", "B-area", "I-area", "B-floor", "I-floor"]


def one_hot(*names):
    out = np.full((len(names), len(TAGS)), 0.01)
    for i, n in enumerate(names):
        out[i, TAGS.index(n)] = 0.94
    return out


def test_window_features_put_each_piece_beside_its_neighbours_and_ignore_padding():
    hidden = np.arange(1, 2 * 4 * 2 + 1, dtype=np.float32).reshape(2, 4, 2)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    x = window_features(hidden, mask, 1)
    assert x.shape == (2, 4, 6)
    assert x[0, 1].tolist() == [1, 2, 3, 4, 5, 6]  # previous, own, next
    assert x[0, 0, :2].tolist() == [0, 0] and x[0, 3, 4:].tolist() == [0, 0]  # past either end
    assert x[1, 1, 4:].tolist() == [0, 0]  # padding is never a neighbour
    assert np.array_equal(window_features(hidden, mask, 0)[0], hidden[0])


def test_decode_gives_whole_words_and_keeps_a_typos_pieces_together():
    text = "turn on the flor lamp in the kitchen"
    # [CLS] turn on the fl ##or lamp in the kitchen [SEP]; "##or" wrongly O, outvoted within its word
    offsets = [(0, 0), (0, 4), (5, 7), (8, 11), (12, 14), (14, 16), (17, 21), (22, 24), (25, 28), (29, 36), (0, 0)]
    probs = one_hot("O", "O", "O", "O", "B-name", "O", "I-name", "O", "O", "B-area", "O")
    probs[5] = [0.4, 0.0, 0.6 - 0.2, 0.1, 0.0, 0.05, 0.05]  # O 0.4 vs name 0.4 + its first piece's 0.95
    spans = decode(TAGS, probs, offsets, text)
    assert [(s.kind, text[s.start:s.end]) for s in spans] == [("name", "flor lamp"), ("area", "kitchen")]
    assert all(0 < s.score <= 1 for s in spans)


def test_decode_joins_neighbouring_words_of_one_kind_even_when_both_begin():
    text = "lights in the breakfast nook"
    offsets = [(0, 0), (0, 6), (7, 9), (10, 13), (14, 23), (24, 28), (0, 0)]
    spans = decode(TAGS, one_hot("O", "O", "O", "O", "B-area", "B-area", "O"), offsets, text)
    assert [(s.kind, text[s.start:s.end]) for s in spans] == [("area", "breakfast nook")]
    assert decode(TAGS, one_hot("O", "O", "O", "O", "O", "O", "O"), offsets, text) == []


# Typos the strict scan misses (ratio below 85): the tagger must say a name is there for the matcher to find it
TYPOS = [("turn on the dsek lmap", "name", "Desk Lamp"), ("turn on the strng lites", "name", "String Lights"),
         ("switch on the galely lights", "area", "Galley")]


@pytest.mark.model
def test_the_real_tagger_finds_typod_names_the_strict_scan_misses(early_exit_bundle):
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.early_exit import EarlyExitClassifier
    from edgeslm.runtime.tiers.home import Area, Entity, Home
    from edgeslm.runtime.tiers.slots import HomeMatcher

    engine = EarlyExitClassifier.from_bundle(open_bundle(early_exit_bundle))
    assert engine.tagger is not None
    home = Home("en", (), (Area("galley", "Galley"), Area("office", "Office")),
                (Entity("light.string", "String Lights", "galley"), Entity("light.desk", "Desk Lamp", "office"),
                 Entity("lock.front", "Front Door")))
    matcher = HomeMatcher(home)
    texts = [t for t, _, _ in TYPOS]
    out = engine.run([*texts, "what time is it"], embed=True, spans=True)
    assert out.spans[-1] == []  # nothing to tag in a question about the time
    found = 0
    for (text, kind, value), spans in zip(TYPOS, out.spans, strict=False):
        assert kind not in matcher.slots(text, None)
        found += matcher.slots(text, None, tagged=spans).get(kind) == value
    assert found >= 2, [[(s.kind, t[s.start:s.end]) for s in sp] for t, sp in zip(texts, out.spans, strict=False)]
    # asking for spans changes nothing else the pass gives
    plain = engine.run(texts, embed=True)
    assert np.allclose(plain.logits, out.logits[:3], atol=1e-5) and np.allclose(plain.embedding, out.embedding[:3], atol=1e-6)
    assert plain.spans is None
