"""The early-exit engine on a real early-exit bundle (MiniLM-L6 trained briefly on ha-intents, int8
segments, exits after layers 2 and 4): per-sample exits inside a batch, the embedding, and damaged files."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeslm.data.records import read_examples
from edgeslm.errors import BundleError
from edgeslm.formats.hashing import sha256_file
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.early_exit import EarlyExitClassifier
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.engines.registry import LoadSettings, engine_kind, load_engine
from edgeslm.train.run import RunFolder

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def engine(early_exit_bundle):
    return EarlyExitClassifier.from_bundle(open_bundle(early_exit_bundle), threads=2)


@pytest.fixture(scope="module")
def texts(trained_run):
    return [ex.text for ex in read_examples(RunFolder(trained_run).split("val"))[:48]]


def split_thresholds(engine, texts):
    """Thresholds that send some of `texts` out at each exit, each set in the widest gap between
    confidences near the middle, so float noise cannot move a sample across it."""
    logits = engine.all_exits(texts)
    out = []
    for head in logits[:-1]:
        conf = np.sort(1.0 / np.exp(head - head.max(-1, keepdims=True)).sum(-1))
        lo, hi = len(conf) // 4, 3 * len(conf) // 4
        i = lo + int(np.argmax(np.diff(conf[lo:hi + 1])))
        out.append(float((conf[i] + conf[i + 1]) / 2))
    return out


@pytest.fixture
def mixed(engine, texts):
    """The engine with thresholds that split the batch over every exit; restored afterwards."""
    saved = engine.thresholds
    engine.thresholds = split_thresholds(engine, texts)
    yield engine
    engine.thresholds = saved


def assert_same(a, b):
    assert [(x["label"], x["exit_layer"]) for x in a] == [(x["label"], x["exit_layer"]) for x in b]
    assert [x["score"] for x in a] == pytest.approx([x["score"] for x in b], abs=1e-4)


def test_batch_results_equal_one_at_a_time(engine, texts):
    assert_same(engine.predict(texts), [engine.predict([t])[0] for t in texts])


def test_a_batch_split_over_every_exit_equals_one_at_a_time(mixed, texts):
    batch = mixed.predict(texts)
    assert {r["exit_layer"] for r in batch} == {2, 4, 6}  # some leave at each exit, some run all 6 layers
    assert_same(batch, [mixed.predict([t])[0] for t in texts])
    assert_same(batch[5:9], mixed.predict(texts[5:9]))  # and any sub-batch agrees too


def test_logits_are_those_of_the_exit_taken(mixed, texts):
    logits, results = mixed.logits(texts), mixed.predict(texts)
    assert logits.shape == (len(texts), len(mixed.labels))
    assert [mixed.labels[i] for i in logits.argmax(-1)] == [r["label"] for r in results]
    assert mixed.predict([]) == [] and mixed.logits([]).shape == (0, len(mixed.labels))
    assert mixed.embed([]).shape == (0, mixed.plan.hidden_size)


def test_an_exit_answers_with_its_own_head(mixed, texts):
    logits = mixed.all_exits(texts)
    for text, r, i in zip(texts, mixed.predict(texts), range(len(texts)), strict=True):
        head = logits[{2: 0, 4: 1, 6: 2}[r["exit_layer"]]][i]
        assert r["label"] == mixed.labels[int(head.argmax())], text
        if r["exit_layer"] < 6:
            assert r["score"] >= mixed.thresholds[{2: 0, 4: 1}[r["exit_layer"]]]


def test_without_exits_it_is_the_trained_model(engine, texts, session_bundle):
    saved = engine.thresholds
    engine.thresholds = [None, None]
    try:
        deep = engine.predict(texts)
    finally:
        engine.thresholds = saved
    assert {r["exit_layer"] for r in deep} == {6}
    fp32 = OnnxClassifier.from_bundle(open_bundle(session_bundle), threads=2).predict(texts)
    agree = np.mean([a["label"] == b["label"] for a, b in zip(deep, fp32, strict=True)])
    assert agree >= 0.95  # int8 segments against the run's own fp32 export


def test_calibrated_exits_keep_validation_accuracy(engine, early_exit_bundle, trained_run):
    m = open_bundle(early_exit_bundle).manifest
    report = m.provenance["early_exit"]
    rows = read_examples(RunFolder(trained_run).split("val"), labels=m.labels)
    got = [r for i in range(0, len(rows), 64) for r in engine.predict([ex.text for ex in rows[i:i + 64]])]
    accuracy = float(np.mean([r["label"] == ex.label for r, ex in zip(got, rows, strict=True)]))
    assert accuracy == pytest.approx(m.evaluation["val"]["accuracy"], abs=1e-4)  # what the build measured, reproduced
    assert accuracy >= report["full_depth_val_accuracy"] - report["calibration"]["max_drop"] - 1e-9


def test_embed_is_unit_length_batch_invariant_and_close_for_paraphrases(engine):
    texts = ["turn on the kitchen light", "switch the kitchen lights on", "what's the weather like tomorrow"]
    e = engine.embed(texts)
    assert e.shape == (3, engine.plan.hidden_size) and e.dtype == np.float32
    assert np.linalg.norm(e, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert np.vstack([engine.embed([t]) for t in texts]) == pytest.approx(e, abs=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])
    results, both = engine.predict_and_embed(texts)
    assert both == pytest.approx(e, abs=1e-6)
    assert_same(results, engine.predict(texts))


def test_loaded_by_the_manifest_engine(early_exit_bundle):
    bundle = open_bundle(early_exit_bundle)
    assert bundle.manifest.format_version == 2
    assert engine_kind(bundle.manifest.engine).capabilities == {"classify"}
    loaded = load_engine(bundle, LoadSettings(threads=1, spin=True))
    assert isinstance(loaded, EarlyExitClassifier) and loaded.name == bundle.manifest.name
    for session in loaded.sessions:  # never spinning: one segment's idle workers would starve the next segment
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 1
    assert loaded.memory_bytes() > sum((early_exit_bundle / f"segment-{i}.onnx").stat().st_size for i in (1, 2, 3))
    with pytest.raises(BundleError, match="a bundle for onnxruntime-early-exit; load it with"):
        OnnxClassifier.from_bundle(bundle)


def test_it_runs_where_torch_is_not_installed(early_exit_bundle):
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'transformers'):
                    raise ImportError('blocked for this test: ' + name)
        sys.meta_path.insert(0, Block())
        from edgeslm.formats.reader import open_bundle
        from edgeslm.runtime.engines.registry import load_engine
        engine = load_engine(open_bundle({str(early_exit_bundle)!r}))
        results = engine.predict(["turn on the kitchen light", "what is the weather like"])
        assert engine.embed(["turn off the fan"]).shape == (1, 384)
        assert 'torch' not in sys.modules and 'transformers' not in sys.modules
        print(sorted(results[0]))
    """)
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['exit_layer', 'label', 'score']"


def test_bad_requests_raise_value_errors(engine):
    for method in (engine.predict, engine.embed):
        with pytest.raises(ValueError, match="non-empty"):
            method(["turn on the light", " "])
        with pytest.raises(ValueError, match="limit"):
            method(["a" * 10_000])


# ---- damaged bundles -----------------------------------------------------------------------------


@pytest.fixture
def damaged(early_exit_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(early_exit_bundle, dst)
    return dst


def rehash(bundle, *names):
    """Sign the damage into the manifest, as a buggy writer would: only the engine can catch it then."""
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    for name in names:
        data["files"][name] = {"sha256": sha256_file(bundle / name), "bytes": (bundle / name).stat().st_size}
    path.write_text(json.dumps(data))


def test_a_truncated_segment_is_a_bundle_error(damaged):
    seg = damaged / "segment-2.onnx"
    seg.write_bytes(seg.read_bytes()[: seg.stat().st_size // 2])
    with pytest.raises(BundleError, match="segment-2.onnx is .* bytes, the manifest says .*truncated"):
        open_bundle(damaged)
    rehash(damaged, "segment-2.onnx")
    with pytest.raises(BundleError, match="segment-2.onnx: ONNX Runtime cannot load it"):
        EarlyExitClassifier.from_bundle(open_bundle(damaged))


def test_segments_out_of_order_are_a_bundle_error(damaged):
    one, two = damaged / "segment-1.onnx", damaged / "segment-2.onnx"
    first = one.read_bytes()
    one.write_bytes(two.read_bytes())
    two.write_bytes(first)
    rehash(damaged, "segment-1.onnx", "segment-2.onnx")
    with pytest.raises(BundleError, match="segment 1 of 3 wants inputs .*hidden_in.* that the manifest does not name"):
        EarlyExitClassifier.from_bundle(open_bundle(damaged))


def test_a_malformed_exit_plan_is_a_bundle_error(damaged):
    plan = damaged / "early-exit.json"
    data = json.loads(plan.read_text())
    data["segments"][0]["threshold"] = 7
    plan.write_text(json.dumps(data))
    rehash(damaged, "early-exit.json")
    with pytest.raises(BundleError, match=r"segments\[0\]: threshold must be a softmax probability"):
        load_engine(open_bundle(damaged))
    plan.write_bytes(b"\x00garbage")
    rehash(damaged, "early-exit.json")
    with pytest.raises(BundleError, match="not valid UTF-8 JSON"):
        load_engine(open_bundle(damaged))
