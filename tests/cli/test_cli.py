"""The CLI as a user runs it: a real process, --json output, and one clear line on bad input."""

import json
import subprocess
import sys


def edgeslm(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgeslm.cli.main", *args], check=False, capture_output=True, text=True,
                          timeout=timeout)


def assert_clean_error(r, pattern):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and pattern in r.stderr, r.stderr


def test_models_json_lists_builtins():
    r = edgeslm("models", "--json")
    assert r.returncode == 0, r.stderr
    names = {m["name"] for m in json.loads(r.stdout)["models"]}
    assert {"minilm-l6", "smollm2-135m"} <= names


def test_every_command_has_json_and_help():
    for cmd in (["models"], ["data", "split"], ["data", "noisy"], ["train"], ["export"], ["inspect"], ["eval"], ["demo"],
                ["compress"], ["compare"], ["bench"], ["serve"], ["replay"]):
        r = edgeslm(*cmd, "--help")
        assert r.returncode == 0 and "--json" in r.stdout, cmd


def test_unknown_model_and_missing_bundle(tmp_path):
    assert_clean_error(edgeslm("models", "nope/nothing"), "never downloads")
    assert_clean_error(edgeslm("inspect", str(tmp_path)), "no manifest.json")
    assert_clean_error(edgeslm("eval", str(tmp_path / "x"), "--data", str(tmp_path / "d.jsonl")), "not a bundle directory")


def test_serve_refuses_bad_stream_flags_before_loading_anything(tmp_path):
    bundle = str(tmp_path / "no-bundle-here")  # the flags are checked first: the bundle is never opened
    assert_clean_error(edgeslm("serve", bundle, "--sensor-ttl", "0"), "ServeConfig.sensor_ttl_s must be more than 0")
    assert_clean_error(edgeslm("serve", bundle, "--stream-hop", "0"), "ServeConfig.stream_hop must be >= 1")
    assert_clean_error(edgeslm("serve", bundle, "--max-sensors", "0"), "ServeConfig.max_sensors must be between 1")
    r = edgeslm("serve", bundle, "--max-sensors", "lots")
    assert r.returncode == 2 and "Invalid value for '--max-sensors'" in r.stderr and "Traceback" not in r.stderr


def test_train_rejects_a_bad_config_before_loading_anything(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"epochs": 1, "lr": 0.1}))
    assert_clean_error(edgeslm("train", "--out", str(tmp_path / "r"), "--config", str(cfg)), "unknown field(s) lr")


def test_data_split_and_noisy(tmp_path):
    r = edgeslm("data", "split", "ha-intents", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    sizes = json.loads(r.stdout)["sizes"]
    assert sizes["train"] > 10000 and sizes["test"] > 1000
    r = edgeslm("data", "noisy", str(tmp_path / "test.jsonl"), "--out", str(tmp_path / "n.jsonl"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == sizes["test"]


def test_bad_bundles_and_data_through_eval(tiny_bundle_copy, tmp_path):
    data = tmp_path / "test.jsonl"
    data.write_text('{"text": "turn on the lamp", "label": "TurnOn"}\n{"text": "lights off", "label": "TurnOff"}\n'
                    '{"text": "what is the weather like", "label": "Weather"}\n')
    r = edgeslm("inspect", str(tiny_bundle_copy), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["verified"] is True
    r = edgeslm("eval", str(tiny_bundle_copy), "--data", str(data), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["accuracy"] == 1.0, r.stderr

    bad_labels = tmp_path / "bad.jsonl"
    bad_labels.write_text('{"text": "make me a coffee", "label": "HassMakeCoffee"}\n')
    assert_clean_error(edgeslm("eval", str(tiny_bundle_copy), "--data", str(bad_labels)), "unknown label 'HassMakeCoffee'")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "turn on the light", "label": "TurnOn"}\nnot json\n')
    assert_clean_error(edgeslm("eval", str(tiny_bundle_copy), "--data", str(broken)), "broken.jsonl:2")

    model = tiny_bundle_copy / "model.onnx"
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model.write_bytes(bytes(blob))
    assert_clean_error(edgeslm("eval", str(tiny_bundle_copy), "--data", str(data)), "does not match its sha256")
    assert_clean_error(edgeslm("inspect", str(tiny_bundle_copy)), "does not match its sha256")


def test_compress_rejects_bad_recipes_and_sources_before_any_work(tmp_path):
    assert_clean_error(edgeslm("compress", str(tmp_path), "--recipe", "int3-magic", "--out", str(tmp_path / "o")),
                       "neither a built-in recipe")
    assert_clean_error(edgeslm("compress", str(tmp_path), "--recipe", "int8-dynamic", "--floor", "1.7",
                               "--out", str(tmp_path / "o")), "impossible")
    assert_clean_error(edgeslm("compress", str(tmp_path), "--recipe", "int8-dynamic", "--out", str(tmp_path / "o")),
                       "neither a training run")
    assert_clean_error(edgeslm("compress", str(tmp_path), "--recipe", "int8-static", "--profile", "toaster",
                               "--out", str(tmp_path / "o")), "unknown device profile")
