"""A small early-exit bundle around the tiny bundle's graph, with whatever files a test adds beside the
segments (slot-tagger.json, ngram-head.json): written and signed as BundleWriter writes any bundle."""

import json

import pytest

from edgeslm.formats.manifest import EARLY_EXIT_ENGINE
from edgeslm.formats.writer import BundleWriter

PLAN = {"version": 1, "hidden_size": 4, "segments": [{"file": "segment-1.onnx", "layers": 2, "threshold": 0.9},
                                                     {"file": "segment-2.onnx", "layers": 6}]}


@pytest.fixture
def write_early_exit(tiny_bundle):
    def write(out, files, labels=("a", "b")):
        """`files`: name -> text (None: left out)."""
        with BundleWriter(out) as w:
            w.add(tiny_bundle / "tokenizer.json", "tokenizer.json")
            for i in (1, 2):
                w.add(tiny_bundle / "model.onnx", f"segment-{i}.onnx")
            w.path("early-exit.json").write_text(json.dumps(PLAN))
            for name, text in files.items():
                if text is not None:
                    w.path(name).write_text(text)
            w.finish(name="ee", family="encoder", architecture="bert", task="text-classification",
                     engine=EARLY_EXIT_ENGINE, model_file="early-exit.json", labels=list(labels),
                     tokenizer={"file": "tokenizer.json", "max_length": 16})
        return out
    return write
