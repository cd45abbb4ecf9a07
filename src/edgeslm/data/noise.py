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
    words = text.split()
    p_typo = 0.12 * strength
    words = [typo(w, rng) if rng.random() < p_typo else w for w in words]
    if len(words) > 3 and rng.random() < 0.15 * strength:
        words.insert(rng.randrange(1, len(words)), rng.choice(INFIXES))
    if rng.random() < 0.35 * strength:
        words = rng.choice(PREFIXES).split() + words
    if rng.random() < 0.3 * strength:
        words = words + rng.choice(SUFFIXES).split()
    out = " ".join(words)
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
