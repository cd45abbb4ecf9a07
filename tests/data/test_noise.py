import random

from edgeslm.data.noise import add_noise, add_noise_spans, typo


def test_typo_changes_long_words_only():
    rng = random.Random(0)
    assert typo("on", rng) == "on"
    changed = {typo("kitchen", random.Random(i)) for i in range(50)}
    assert len(changed) > 10
    assert all(abs(len(c) - len("kitchen")) <= 1 for c in changed)


def test_noise_is_deterministic_and_keeps_content_words():
    a = add_noise("turn on the kitchen lights", random.Random(3))
    b = add_noise("turn on the kitchen lights", random.Random(3))
    assert a == b
    outs = [add_noise("turn on the kitchen lights", random.Random(i)) for i in range(100)]
    assert sum(o != "turn on the kitchen lights" for o in outs) > 50
    assert all(len(o.split()) >= 4 for o in outs)


def test_add_noise_output_is_pinned():
    """add_noise feeds the ha-intents dataset: the same seed must keep giving the same text (these were
    its outputs before add_noise_spans shared its word-level steps)."""
    text = "turn off the lights in the living room please"
    pinned = {1: "Trn off the lights in tje living room pleae if you can.",
              7: "Turn of uh the lights in the livign room please",
              12: "i'd like you to turn off the loghts in the living room please if you can.",
              40: "turn off thee lights in the living room please asap"}
    for seed, want in pinned.items():
        assert add_noise(text, random.Random(seed), 1.5) == want


def test_add_noise_spans_carries_each_slot_through():
    text = "turn on the floor lamp in Emma's room"
    spans = [(12, 22, "name"), (26, 37, "area")]
    seen_typo = False
    for seed in range(300):
        plain = add_noise(text, random.Random(seed), 2.0)
        out, moved = add_noise_spans(text, spans, random.Random(seed), 2.0)
        assert out == plain  # the same noise as add_noise draws with that seed
        assert [k for _, _, k in moved] == ["name", "area"]
        name, area = (out[s:e] for s, e, _ in moved)
        assert name.split()[0].lower()[0] == "f" and name.split()[-1].lower()[0] == "l"
        assert area.lower().startswith("emma's ") and area.split()[-1].lower().startswith("r")
        seen_typo |= name.lower() not in ("floor lamp",) and "uh" not in name.lower().split()
    assert seen_typo
