"""Building the early-exit bundle (compress/early_exit.py, export/segments.py): what it records, and
its config refusing what cannot be built."""

import pytest

from edgeslm.compress.early_exit import EarlyExitConfig, early_exit_of
from edgeslm.errors import ConfigError
from edgeslm.export.segments import check_exits
from edgeslm.formats.early_exit import read_exit_plan
from edgeslm.formats.reader import open_bundle


@pytest.mark.model
def test_the_bundle_records_segments_heads_and_thresholds_chosen_on_validation(early_exit_bundle, trained_run):
    bundle = open_bundle(early_exit_bundle)
    m = bundle.manifest
    assert (m.engine, m.format_version, m.model_file) == ("onnxruntime-early-exit", 2, "early-exit.json")
    assert set(m.files) == {"early-exit.json", "segment-1.onnx", "segment-2.onnx", "segment-3.onnx", "tokenizer.json",
                            "recipe.yaml", "slot-tagger.json", "ngram-head.json"}
    plan = read_exit_plan(bundle)
    assert [s.layers for s in plan.segments] == [2, 4, 6] and plan.hidden_size == 384
    report = m.provenance["early_exit"]
    assert report["calibration"]["split"] == "val"
    assert [s.threshold for s in plan.exits] == report["calibration"]["thresholds"]
    assert [h["after_layer"] for h in report["heads"]] == [2, 4]
    assert all(h["samples"] == 1000 for h in report["heads"])
    # exported faithfully (each segment fused like the whole model), then held to the recipe's floor at full depth
    assert report["export_check"]["max_abs_diff"] < 1e-3
    assert all(f.get("Attention") == 2 for f in report["export_check"]["fused"])
    assert report["full_depth_val_accuracy"] >= report["floor"] * report["fp32_val_accuracy"]
    assert m.provenance["recipe"]["name"] == "int8-static"
    # the slot tagger, fitted on generated sentences, places held-out names far better than chance
    tagger = report["slot_tagger"]
    assert tagger["config"]["sentences"] == 6000 and tagger["train_tokens"] > 20_000
    assert tagger["val"]["clean"]["f1"] > 0.5 and tagger["val"]["noisy"]["f1"] > 0.4
    ngram = report["ngram_head"]  # fitted on the run's whole training split, its floor set on the validation split
    assert ngram["sentences"] > 10_000 and ngram["val_accuracy"] > 0.9
    assert 0.0 < ngram["floor"]["floor"] <= 1.0 and ngram["floor"]["answers"] > 0.5
    assert ngram["floor"]["lost"] <= 0.005 * ngram["floor"]["answers"] * ngram["floor"]["rows"] + 1e-6
    assert all(q["scheme"] == "int8-static" and q["static_activations"] > 0 for q in report["quantization"])
    for split in ("val", "test"):
        shares = m.evaluation[split]["exit_share"]
        assert set(shares) == {"2", "4", "6"} and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    # reused by the demo only when made from this run with this config
    assert early_exit_of(early_exit_bundle, trained_run, EarlyExitConfig(head_samples=1000))
    assert not early_exit_of(early_exit_bundle, trained_run, EarlyExitConfig(head_samples=1000, max_drop=0.01))
    assert not early_exit_of(early_exit_bundle, trained_run)


@pytest.mark.parametrize("fields, message", [
    ({"exits": []}, "strictly increasing"),
    ({"exits": [4, 2]}, "strictly increasing"),
    ({"exits": [0, 2]}, "strictly increasing"),
    ({"head_samples": 10}, "head_samples"),
    ({"max_drop": 0.6}, "max_drop"),
    ({"head_learning_rate": 0}, "head_learning_rate"),
    ({"exits": "2,4"}, "expected list"),
    ({"tagger_window": 7}, "window in"),
    ({"tagger_sentences": 10}, "sentences >= 100"),
])
def test_config_refuses_what_cannot_be_built(fields, message):
    with pytest.raises(ConfigError, match=message):
        EarlyExitConfig(**fields)


def test_exits_must_leave_the_last_layers_to_the_full_model():
    check_exits([2, 4], 6)
    with pytest.raises(ConfigError, match=r"in \[1, 5\]"):
        check_exits([2, 6], 6)
