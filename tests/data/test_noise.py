import random

from edgeslm.data.noise import add_noise, typo


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
