"""evaluate_bundle end to end on the tiny synthetic bundle: real files, the real engine."""

import json

from edgeslm.evaluate.runner import evaluate_bundle


def test_long_texts_in_the_data_are_scored_not_refused(tiny_bundle, tmp_path):
    # Data files may hold texts past the engine's per-request limit; the model reads only its first
    # max_length tokens of them anyway, so evaluation scores them like the device would.
    data = tmp_path / "d.jsonl"
    rows = [{"text": "turn the lamp off " + "please " * 1000, "label": "TurnOff"},
            {"text": "what is the weather like", "label": "Weather"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = evaluate_bundle(tiny_bundle, data, threads=1, warmup=1)
    assert result["n"] == 2 and result["accuracy"] == 1.0
