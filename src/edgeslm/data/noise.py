"""Noise a speech-to-text front end or a hurried typist adds: fillers, politeness, typos, casing.

Used twice, with different seeds: to augment training data, and to make a noisy copy of an
evaluation set. Pure functions of (text, rng).
"""

from __future__ import annotations

import random

PREFIXES = [
    "um", "uh", "hey", "ok", "okay", "so", "please", "can you", "could you", "would you",
    "hey there", "um can you", "uh please", "i want you to", "i'd like you to", "yo", "hmm",
    "ok so", "alright", "quick question", "hey assistant", "excuse me", "i need you to",
    "would you mind", "go ahead and", "just", "um so", "well",
]
SUFFIXES = [
    "please", "thanks", "thank you", "now", "right now", "for me", "asap", "ok", "okay",
    "please and thank you", "if you can", "real quick", "thx", "pls", "for me please", "now please",
]
INFIXES = ["um", "uh", "like", "uhm", "er", "you know"]
KEYBOARD = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv",
    "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm",
    "o": "iklp", "p": "ol", "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji",
    "v": "cfgb", "w": "qase", "x": "zsdc", "y": "tghu", "z": "asx",
}


def typo(word: str, rng: random.Random) -> str:
    """One keyboard or spelling slip in a word of three or more letters."""
    if len(word) < 3 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word))
    kind = rng.random()
    if kind < 0.3:  # dropped letter
        return word[:i] + word[i + 1 :]
    if kind < 0.55:  # swapped neighbours
        i = min(i, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind < 0.75:  # doubled letter
        return word[:i] + word[i] + word[i:]
    near = KEYBOARD.get(word[i].lower())
    return word[:i] + (rng.choice(near) if near else word[i]) + word[i + 1 :]


def add_noise(text: str, rng: random.Random, strength: float = 1.0) -> str:
    """A noisy variant of `text`: each kind of noise applied with a probability scaled by strength."""
    return _finish(" ".join(w for w, _ in _noisy_words(text.split(), rng, strength)), rng)


def add_noise_spans(text: str, spans: list[tuple[int, int, str]], rng: random.Random,
                    strength: float = 1.0) -> tuple[str, list[tuple[int, int, str]]]:
    """add_noise, and where each (start, end, kind) character span of `text` went: a slot value keeps its
    label through typos, fillers and casing (what a slot tagger is trained on). A span runs from its first
    word to its last, so a filler said inside a name stays inside it."""
    words, starts, pos = text.split(), [], 0
    for w in words:
        pos = text.index(w, pos)
        starts.append(pos)
        pos += len(w)
    noisy = _noisy_words(words, rng, strength)
    new_start, at = {}, 0
    for w, src in noisy:
        if src is not None:
            new_start[src] = at
        at += len(w) + 1
    out_spans = []
    for start, end, kind in spans:
        covered = [i for i, s in enumerate(starts) if s < end and start < s + len(words[i])]
        if not covered:
            continue
        first, last = covered[0], covered[-1]
        lead = max(0, start - starts[first])  # "(lamp" or a span that starts inside a word keeps its offset
        trail = max(0, starts[last] + len(words[last]) - end)  # "lamp's": the "'s" stays outside
        end_word = new_start[last] + len(_word_of(noisy, last))
        out_spans.append((new_start[first] + lead, max(new_start[first] + lead + 1, end_word - trail), kind))
    out = _finish(" ".join(w for w, _ in noisy), rng)
    return out, out_spans


def _word_of(noisy: list[tuple[str, int | None]], src: int) -> str:
    return next(w for w, s in noisy if s == src)


def _noisy_words(words: list[str], rng: random.Random, strength: float) -> list[tuple[str, int | None]]:
    """Typos and fillers, each word with the index of the word it came from (None for a filler)."""
    p_typo = 0.12 * strength
    out: list[tuple[str, int | None]] = [(typo(w, rng) if rng.random() < p_typo else w, i) for i, w in enumerate(words)]
    if len(out) > 3 and rng.random() < 0.15 * strength:
        out.insert(rng.randrange(1, len(out)), (rng.choice(INFIXES), None))
    if rng.random() < 0.35 * strength:
        out = [(w, None) for w in rng.choice(PREFIXES).split()] + out
    if rng.random() < 0.3 * strength:
        out = out + [(w, None) for w in rng.choice(SUFFIXES).split()]
    return out


def _finish(out: str, rng: random.Random) -> str:
    """Casing and end punctuation: lengths and positions of what is there stay as they were."""
    roll = rng.random()
    if roll < 0.15:
        out = out.capitalize()
    elif roll < 0.2:
        out = out.upper()
    roll = rng.random()
    if roll < 0.15:
        out += "?" if out.split()[0].lower() in {"what", "what's", "is", "are", "how", "where", "when"} else "."
    elif roll < 0.2:
        out += "!"
    return out
