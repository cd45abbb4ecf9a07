"""Export a trained encoder as segments for early exit (build side: torch): embeddings and the first
layers, then the next layers, ..., then the last layers and the task head, each its own ONNX graph
with the tensor names of formats/early_exit.py, fused for ONNX Runtime the way the whole model is
(export/onnx.py), and checked against PyTorch on real task sentences.

Every segment but the last ends in an exit head: a linear layer on the masked mean of its hidden
states (compress/exit_heads.py trains them with the backbone frozen).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import BundleError, ConfigError, ModelNotFoundError
from edgeslm.export.onnx import OPSET, architecture_export, attention_shape, fuse_transformer, model_inputs
from edgeslm.formats.early_exit import HIDDEN_IN, HIDDEN_OUT, LOGITS, MASK, POOLED

ARCHITECTURES = ("bert",)  # the encoder layout (embeddings, encoder.layer, pooler, classifier) segments are cut from


def encoder_layers(model: Any) -> list[Any]:
    if model.config.model_type not in ARCHITECTURES:
        raise ConfigError(f"early exit is built for {', '.join(ARCHITECTURES)} encoders, not {model.config.model_type}")
    return list(model.base_model.encoder.layer)


def check_exits(exits: Sequence[int], n_layers: int) -> None:
    if not exits or list(exits) != sorted(set(exits)) or exits[0] < 1 or exits[-1] >= n_layers:
        raise ConfigError(f"exits {list(exits)}: strictly increasing layer counts in [1, {n_layers - 1}] "
                          f"(the model has {n_layers} layers; the last always answers)")


def masked_mean(hidden: Any, mask: Any) -> Any:
    """[B, S, H], [B, S] -> [B, H]: the mean of the hidden states over the unmasked tokens (torch)."""
    m = mask[..., None].to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def segment_modules(model: Any, exits: Sequence[int], heads: Sequence[Any]) -> list[Any]:
    """torch modules, one per segment: the first takes the tokenizer's tensors, the others
    (hidden, attention_mask); all but the last give (hidden, pooled, logits), the last its logits."""
    import torch
    from transformers.masking_utils import create_bidirectional_mask

    layers = encoder_layers(model)
    check_exits(exits, len(layers))
    if len(heads) != len(exits):
        raise ConfigError(f"{len(exits)} exits need as many heads, got {len(heads)}")
    bounds = [0, *exits, len(layers)]

    class Segment(torch.nn.Module):
        def __init__(self, index: int):
            super().__init__()
            self.first, self.last = index == 0, index == len(bounds) - 2
            self.embeddings = model.base_model.embeddings if self.first else None
            self.layers = torch.nn.ModuleList(layers[bounds[index]:bounds[index + 1]])
            self.head = None if self.last else heads[index]
            # registered here, not reached through `model`: the tracer takes unregistered weights for constants
            self.pooler = model.base_model.pooler if self.last else None
            self.classifier = model.classifier if self.last else None

        def run(self, hidden: Any, mask: Any) -> Any:
            # the same additive mask BertModel makes, so ONNX Runtime's attention fusion recognises it
            extended = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)
            for layer in self.layers:
                out = layer(hidden, extended)
                hidden = out[0] if isinstance(out, tuple) else out
            if self.last:
                return self.classifier(self.pooler(hidden))  # (BERT's dropout before it is identity in eval)
            pooled = masked_mean(hidden, mask)
            return hidden, pooled, self.head(pooled)

    class First(Segment):
        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            return self.run(self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids), attention_mask)

    class Later(Segment):
        def forward(self, hidden: Any, attention_mask: Any) -> Any:
            return self.run(hidden, attention_mask)

    return [(First if i == 0 else Later)(i).eval() for i in range(len(bounds) - 1)]


def export_segments(model: Any, tokenizer: Any, exits: Sequence[int], heads: Sequence[Any], folder: Path,
                    sample: list[str], max_length: int) -> tuple[list[Path], list[str], dict[str, Any]]:
    """Write segment-1.onnx ... into `folder`, fused; returns their paths, the first segment's input
    names and the check against PyTorch on `sample` (a BundleError past the architecture's tolerance)."""
    import torch

    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # the graph pattern ORT's fusions match (export/onnx.py says why)
    try:
        modules = segment_modules(model, exits, heads)
        enc = tokenizer(["turn on the kitchen lights", "what's the weather like"], padding=True, return_tensors="pt")
        names = model_inputs(model, enc)
        if MASK not in names:
            raise ModelNotFoundError(f"early exit needs a tokenizer that gives {MASK}, got {names}")
        heads_n, width = attention_shape(model)
        paths, fused = [], []
        args: tuple[Any, ...] = tuple(enc[n] for n in names)
        inputs = names
        with torch.no_grad():
            for i, module in enumerate(modules):
                last = i == len(modules) - 1
                outputs = [LOGITS] if last else [HIDDEN_OUT, POOLED, LOGITS]
                path = Path(folder) / f"segment-{i + 1}.onnx"
                raw = path.with_name(path.name + ".raw")
                dynamic = {n: {0: "batch", 1: "sequence"} for n in inputs}
                if i:
                    dynamic[HIDDEN_IN] = {0: "batch", 1: "sequence"}
                dynamic.update({o: {0: "batch", 1: "sequence"} if o == HIDDEN_OUT else {0: "batch"} for o in outputs})
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not for our users
                    torch.onnx.export(module, args, str(raw), dynamo=False, opset_version=OPSET, input_names=inputs,
                                      output_names=outputs, dynamic_axes=dynamic)
                try:
                    fused.append(fuse_transformer(raw, path, heads_n, width, model_type=model.config.model_type))
                finally:
                    raw.unlink(missing_ok=True)
                paths.append(path)
                if not last:
                    hidden = module(*args)[0]
                    args, inputs = (hidden, enc[MASK]), [HIDDEN_IN, MASK]
        check = compare_segments(modules, tokenizer, paths, sample, max_length, names)
        check["fused"] = fused
        tolerance = architecture_export(model.config.model_type).tolerance
        if check["max_abs_diff"] > tolerance or check["argmax_agreement"] < 1.0:
            raise BundleError(f"segment export disagrees with PyTorch: max |Δlogit| {check['max_abs_diff']:.2e} "
                              f"(tolerance {tolerance:.0e}), argmax agreement {check['argmax_agreement']:.3f}")
        return paths, names, {**check, "tolerance": tolerance}
    finally:
        model.set_attn_implementation(previous)


def compare_segments(modules: list[Any], tokenizer: Any, paths: list[Path], texts: list[str], max_length: int,
                     names: list[str]) -> dict[str, Any]:
    """Run the ONNX segments chained, each on the previous ONNX segment's hidden states, against the
    torch segments chained; the largest logit difference over every exit and the final head."""
    import onnxruntime as ort
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feed: dict[str, np.ndarray] = {n: enc[n].astype(np.int64) for n in names}
    args: tuple[Any, ...] = tuple(torch.from_numpy(feed[n]) for n in names)
    mask = feed[MASK]
    diff, agree = 0.0, []
    for i, (module, path) in enumerate(zip(modules, paths, strict=True)):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        last = i == len(modules) - 1
        got = sess.run([LOGITS] if last else [HIDDEN_OUT, LOGITS], feed)
        with torch.no_grad():
            want = module(*args)
        want_logits = (want if last else want[2]).numpy()
        diff = max(diff, float(np.abs(got[-1] - want_logits).max()))
        agree.append(float((got[-1].argmax(-1) == want_logits.argmax(-1)).mean()))
        if not last:
            feed = {HIDDEN_IN: got[0], MASK: mask}
            args = (want[0], torch.from_numpy(mask))
    return {"compared_on": len(texts), "max_abs_diff": diff, "argmax_agreement": min(agree),
            "argmax_agreement_per_segment": agree}
