"""`edgeslm eval BUNDLE --data FILE.jsonl` on rows {"series": [...], "label": ...}, torch-free engine."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgeslm.cli.main import cli
from edgeslm.formats.reader import open_bundle
from edgeslm.train.run import RunFolder


def test_eval_scores_series_jsonl_like_the_bundle_says(series_bundle, series_run, tmp_path):
    lines = RunFolder(series_run).split("test").read_text().splitlines()[:600]
    data = tmp_path / "test.jsonl"
    data.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["eval", str(series_bundle), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["n"] == 600 and r["latency"]["batch"] == 1 and r["latency"]["p50_ms"] > 0
    truth = [json.loads(line)["label"] for line in lines]
    # the bundle's own test accuracy (4,500 series) is close to this slice's, and far above the majority class
    assert r["accuracy"] >= 0.8 and set(truth) <= set(open_bundle(series_bundle).manifest.labels)
    text = CliRunner().invoke(cli, ["eval", str(series_bundle), "--data", str(data)])
    assert text.exit_code == 0 and "accuracy" in text.output


def test_eval_names_the_bad_line(series_bundle, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"series": [0.1] * 140, "label": "1"}) + "\n" + json.dumps({"series": [0.1] * 140, "label": "9"}) + "\n")
    result = CliRunner().invoke(cli, ["eval", str(series_bundle), "--data", str(data)])
    assert result.exit_code == 2 and "bad.jsonl:2: unknown label '9'" in result.output
    data.write_text(json.dumps({"series": [0.1] * 100, "label": "1"}) + "\n")
    result = CliRunner().invoke(cli, ["eval", str(series_bundle), "--data", str(data)])
    assert result.exit_code == 2 and "140 time steps" in result.output
