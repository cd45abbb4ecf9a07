"""Export a trained run to a bundle (build side: torch). Encoders go to ONNX, checked against
PyTorch on real task sentences within a tolerance set per architecture."""

from __future__ import annotations

import inspect
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.data.records import read_examples
from edgeslm.errors import BundleError, ModelNotFoundError
from edgeslm.formats.manifest import MODEL_INPUTS
from edgeslm.formats.writer import BundleWriter
from edgeslm.train.run import RunFolder

log = logging.getLogger(__name__)
OPSET = 17
# How export_onnx builds the graph; caches of earlier exports are stale when this changes.
EXPORTER = f"torchscript-opset{OPSET}+ort-bert-fusion"


@dataclass(frozen=True)
class ArchitectureExport:
    """How one encoder architecture (config.model_type) is exported and checked."""

    fusion: str  # onnxruntime.transformers.optimizer model_type
    tolerance: float  # max |logit difference| ONNX vs PyTorch, fp32; argmax must agree everywhere


# ONNX Runtime's optimizer has one encoder model_type, "bert", for all three (its own
# huggingface_models.py exports distilbert-* and roberta-* with "bert"); its embedding fusion matches
# BERT's and DistilBERT's embeddings and leaves RoBERTa's (positions counted from padding_idx + 1) as
# a LayerNormalization; Attention, SkipLayerNormalization and BiasGelu fuse in all three.
# Tolerances: max |Δlogit|, fused ONNX vs PyTorch fp32, on 64-300 task sentences, is fp32
# reassociation in the fused kernels, 1e-6 and under; 1e-3 leaves >300x headroom for deeper and
# longer-trained models, and a wrong graph still fails it (tests/compress: one weight matrix scaled
# by 1.5 is refused).
ARCHITECTURES = {
    # MiniLM-L6 trained 200 steps 3.1e-6; random base-size (12x768) 8.6e-7; random 2x64 3e-8
    "bert": ArchitectureExport(fusion="bert", tolerance=1e-3),
    # random base-size (6x768) 6.0e-7; random 2x64 2e-8: same fused kernels as BERT, fewer layers
    "distilbert": ArchitectureExport(fusion="bert", tolerance=1e-3),
    # random base-size (12x768) 8.9e-7; random 2x64 3e-8: the unfused embedding LayerNorm adds nothing
    "roberta": ArchitectureExport(fusion="bert", tolerance=1e-3),
}
# The other encoders resolve() accepts (xlm-roberta, electra, mpnet, deberta) are not measured here:
# the optimizer fuses only the patterns it matches, and compare_onnx still checks the result.
OTHER_ARCHITECTURE = ArchitectureExport(fusion="bert", tolerance=1e-3)


def architecture_export(model_type: str) -> ArchitectureExport:
    return ARCHITECTURES.get(model_type, OTHER_ARCHITECTURE)


def export_classifier(run: Path, out: Path, name: str | None = None, profile: str = "any") -> dict[str, Any]:
    """ONNX model + tokenizer.json + manifest; the manifest carries the run's provenance and the
    ONNX model's own test metrics, measured through the device runtime."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = RunFolder(run)
    record = folder.read()
    model = AutoModelForSequenceClassification.from_pretrained(str(folder.model)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder.model))
    max_length = record["max_length"]
    labels = list(record["labels"])
    if not getattr(tokenizer, "is_fast", False) or not folder.tokenizer_file.is_file():
        raise ModelNotFoundError(f"{folder.model}: the device runtime needs a fast tokenizer (tokenizer.json)")

    sample = [ex.text for ex in read_examples(folder.split("test"))[:64]]
    with BundleWriter(out) as writer:
        onnx_path = writer.path("model.onnx")
        input_names = export_onnx(model, tokenizer, onnx_path, max_length)
        writer.add(folder.tokenizer_file, "tokenizer.json")
        check = compare_onnx(model, tokenizer, onnx_path, sample, max_length, input_names)
        tolerance = architecture_export(model.config.model_type).tolerance
        check = verify_export(check, tolerance)
        evaluation = _evaluate_staged(writer, onnx_path, labels, max_length, input_names, folder)
        manifest = writer.finish(
            name=name or Path(out).name,
            family="encoder",
            architecture=record["base_model"]["architecture"],
            task="text-classification",
            engine="onnxruntime",
            model_file="model.onnx",
            labels=labels,
            tokenizer={"file": "tokenizer.json", "max_length": max_length, "inputs": input_names},
            provenance={
                "base_model": record["base_model"]["name"],
                "run": str(folder.path.resolve()),
                "dataset": record["dataset"],
                "train_config": record["config"],
                "train_metrics_torch": record["metrics"],
                "export": {"format": "onnx", "exporter": EXPORTER, "opset": OPSET, "precision": "fp32", **check,
                           "tolerance": tolerance, "torch": torch.__version__},
            },
            evaluation=evaluation,
            profile=profile,
        )
    return manifest.to_dict()


def export_onnx(model: Any, tokenizer: Any, path: Path, max_length: int, keep_raw: Path | None = None) -> list[str]:
    """Export logits(input_ids, attention_mask[, token_type_ids]) to `path`, fused for ONNX Runtime
    the way its architecture fuses; `keep_raw` also keeps the unfused export (what a plain
    torch.onnx.export gives a user). Returns the graph's input names."""
    import torch

    enc = tokenizer(["turn on the kitchen lights", "what's the weather like"], padding=True, return_tensors="pt")
    names = model_inputs(model, enc)
    args = tuple(enc[n] for n in names)

    class Logits(torch.nn.Module):  # a plain tensor out, named inputs in: what ORT callers expect
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    if names[:2] != ["input_ids", "attention_mask"]:
        raise ModelNotFoundError(f"export expects a tokenizer giving input_ids and attention_mask, got {names}")
    # Eager attention + the TorchScript exporter give the graph pattern that ONNX Runtime's transformer
    # optimizer fuses (Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu): measured
    # here 21% faster fp32 and 19% faster int8 at batch 1 than the dynamo export, which it cannot fuse.
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    raw = Path(path).with_name(Path(path).name + ".raw")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not for our users
            torch.onnx.export(
                Logits(model).eval(), args, str(raw), dynamo=False, opset_version=OPSET, input_names=names,
                output_names=["logits"], dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
            )
        _check_graph_inputs(raw, names)
        fuse_transformer(raw, Path(path), *attention_shape(model), model_type=model.config.model_type)
        if keep_raw is not None:
            raw.replace(keep_raw)
    finally:
        raw.unlink(missing_ok=True)
        model.set_attn_implementation(previous)
    return names


def model_inputs(model: Any, encoding: Any) -> list[str]:
    """The feeds the tokenizer gives and the model's forward() takes, in MODEL_INPUTS order. A BERT
    tokenizer gives token_type_ids, which DistilBERT has no parameter for: fed to the graph, ONNX
    Runtime refuses the unknown input name."""
    takes = inspect.signature(model.forward).parameters
    return [n for n in MODEL_INPUTS if n in encoding and n in takes]


def _check_graph_inputs(path: Path, names: list[str]) -> None:
    """The exporter drops an input the graph never reads; every name we feed must be in the graph."""
    import onnx

    graph = [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    if graph != names:
        raise BundleError(f"ONNX export has inputs {graph}, expected {names}: the model ignores one of its inputs")


def attention_shape(model: Any) -> tuple[int, int]:
    """(heads, width) of the first self-attention block: pruning may have made them smaller than the config says."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    att = getattr(getattr(layers[0], "attention", None), "self", None) if layers is not None else None
    if att is not None and hasattr(att, "num_attention_heads"):
        return int(att.num_attention_heads), int(att.query.weight.shape[0])
    config = model.config
    return int(getattr(config, "num_attention_heads", getattr(config, "n_heads", 0))), int(
        getattr(config, "hidden_size", getattr(config, "dim", 0)))


def fuse_transformer(src: Path, dst: Path, heads: int, width: int, model_type: str = "bert") -> dict[str, int]:
    """ONNX Runtime's transformer fusions for this architecture (for the encoders: Attention,
    EmbedLayerNormalization, SkipLayerNormalization, BiasGelu); the fused operators and their counts."""
    from onnxruntime.transformers import optimizer

    for name in ("onnxruntime.transformers", "fusion_attention", "onnx_model", "fusion_utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    fusion = architecture_export(model_type).fusion
    optimized = optimizer.optimize_model(str(src), model_type=fusion, num_heads=heads, hidden_size=width)
    optimized.save_model_to_file(str(dst))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def compare_onnx(model: Any, tokenizer: Any, onnx_path: Path, texts: list[str], max_length: int,
             input_names: list[str]) -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    got = sess.run(["logits"], {n: enc[n].astype(np.int64) for n in input_names})[0]
    with torch.no_grad():
        want = model(**{n: torch.from_numpy(enc[n].astype(np.int64)) for n in input_names}).logits.numpy()
    return {
        "compared_on": len(texts),
        "max_abs_diff": float(np.abs(got - want).max()),
        "argmax_agreement": float((got.argmax(-1) == want.argmax(-1)).mean()),
    }


def verify_export(check: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """compare_onnx's result, or a BundleError when the export disagrees with PyTorch by more than
    the architecture's `tolerance` (ARCHITECTURES)."""
    if check["max_abs_diff"] > tolerance or check["argmax_agreement"] < 1.0:
        raise BundleError(
            f"ONNX export disagrees with PyTorch: max |Δlogit| {check['max_abs_diff']:.2e} "
            f"(tolerance {tolerance:.0e}), argmax agreement {check['argmax_agreement']:.3f}"
        )
    return check


def _evaluate_staged(writer: BundleWriter, onnx_path: Path, labels: list[str], max_length: int,
                     input_names: list[str], run: RunFolder) -> dict[str, Any]:
    """Score the staged ONNX model on the run's held-out splits through the device runtime."""
    from edgeslm.evaluate.runner import evaluate_classifier
    from edgeslm.runtime.engines.onnx import OnnxClassifier

    clf = OnnxClassifier(onnx_path, writer.path("tokenizer.json"), labels, max_length, input_names)
    results = {}
    for split in ("val", "test"):
        rows = read_examples(run.split(split), labels=labels)
        metrics = evaluate_classifier(clf, rows, timed=False)
        results[split] = {k: metrics[k] for k in ("accuracy", "macro_f1", "n")}
    return results
