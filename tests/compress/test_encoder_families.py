"""Every encoder family the README names goes train -> export -> compress int8 -> eval, with its own
inputs and fusion. The folders are tiny random-weight models made here with save_pretrained; the only
files read are MiniLM's tokenizer files, for the BERT-vocabulary families."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import pytest

FAMILIES = {  # architecture -> (inputs the bundle must name, fused EmbedLayerNormalization nodes)
    "bert": (["input_ids", "attention_mask", "token_type_ids"], 1),
    "distilbert": (["input_ids", "attention_mask"], 1),
    # ORT's embedding fusion leaves RoBERTa's (positions counted from padding_idx + 1) unfused
    "roberta": (["input_ids", "attention_mask"], 0),
}
LAYERS = 2


def _bert_tokenizer(folder: Path) -> None:
    """MiniLM's BERT tokenizer as it ships: it gives token_type_ids, whatever the model takes."""
    from edgeslm.models.registry import resolve

    minilm = resolve("minilm-l6").path
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, folder / name)


def _roberta_tokenizer(folder: Path) -> int:
    """A byte-level BPE tokenizer with RoBERTa's special tokens and ids; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["turn on the kitchen lights", "what is the weather like today",
                             "set a timer for ten minutes", "play some music in the living room"], trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                                   model_input_names=["input_ids", "attention_mask"])
    fast.save_pretrained(folder)
    return len(fast)


def make_encoder(arch: str, folder: Path) -> Path:
    """A tiny random-weight base encoder folder of this architecture, as published (no task head)."""
    import torch
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    if arch == "bert":
        BertModel(BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=2,
                             intermediate_size=128)).save_pretrained(folder)
        _bert_tokenizer(folder)
    elif arch == "distilbert":
        DistilBertModel(DistilBertConfig(vocab_size=30522, dim=64, n_layers=LAYERS, n_heads=2,
                                         hidden_dim=128)).save_pretrained(folder)
        _bert_tokenizer(folder)
    else:
        vocab = _roberta_tokenizer(folder)
        RobertaModel(RobertaConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=2,
                                   intermediate_size=128, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                   max_position_embeddings=514)).save_pretrained(folder)
    return folder


def contrib_ops(path: Path) -> collections.Counter:
    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node if n.domain == "com.microsoft")


def graph_inputs(path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(path)).graph.input]


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_encoder_family_trains_exports_compresses_and_evaluates(arch, tmp_path):
    from edgeslm.compress.pipeline import compress
    from edgeslm.compress.recipe import Recipe, load_recipe
    from edgeslm.evaluate.runner import evaluate_bundle
    from edgeslm.export.onnx import ARCHITECTURES, export_classifier
    from edgeslm.formats.reader import open_bundle
    from edgeslm.models.registry import resolve
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train

    inputs, embed_fused = FAMILIES[arch]
    folder = make_encoder(arch, tmp_path / f"tiny-{arch}")
    assert resolve(str(folder)).architecture == arch
    run = tmp_path / "run"
    train(TrainConfig(model=str(folder), max_steps=3, limit_train=96, limit_eval=64, eval_every=3), run,
          progress=False)

    export_classifier(run, tmp_path / "fp32")
    fp32 = open_bundle(tmp_path / "fp32")
    assert fp32.manifest.architecture == arch and fp32.manifest.tokenizer["inputs"] == inputs
    assert fp32.manifest.provenance["export"]["tolerance"] == ARCHITECTURES[arch].tolerance
    model = fp32.file(fp32.manifest.model_file)
    assert graph_inputs(model) == inputs
    ops = contrib_ops(model)
    assert ops["Attention"] == LAYERS and ops["SkipLayerNormalization"] == 2 * LAYERS
    assert ops["EmbedLayerNormalization"] == embed_fused

    # Random weights give near-tied logits, so int8 rounding may flip a few argmaxes against fp32:
    # the built-in 99% floor would test the guard's repairs, not the architecture. Same scheme, low floor.
    recipe = load_recipe("int8-dynamic").to_dict()
    compress(run, Recipe.from_dict({**recipe, "floor": 0.5}), tmp_path / "int8", progress=False, latency_rounds=5)
    int8 = open_bundle(tmp_path / "int8")
    assert int8.manifest.tokenizer["inputs"] == inputs
    model = int8.file(int8.manifest.model_file)
    assert graph_inputs(model) == inputs
    assert contrib_ops(model)["QAttention"] == LAYERS  # quantization found the fused attention

    test = run / "data" / "test.jsonl"
    result = evaluate_bundle(tmp_path / "int8", test, threads=1, warmup=1)
    assert result["n"] == sum(1 for line in test.read_text().splitlines() if line.strip())
    assert 0.0 <= result["accuracy"] <= 1.0


def test_every_fusion_type_exists_in_the_installed_onnxruntime():
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    from edgeslm.export.onnx import ARCHITECTURES, OTHER_ARCHITECTURE
    from edgeslm.models.registry import ENCODER_TYPES

    assert set(FAMILIES) <= set(ARCHITECTURES) <= ENCODER_TYPES
    for spec in (*ARCHITECTURES.values(), OTHER_ARCHITECTURE):
        assert spec.fusion in MODEL_TYPES and 0 < spec.tolerance < 1e-2


def test_a_cached_export_that_feeds_inputs_the_model_lacks_is_redone(tmp_path):
    """Before per-architecture inputs, a DistilBERT run cached BERT's token_type_ids with its export:
    compress must export again rather than feed the graph an input it does not have."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgeslm.compress.context import fp32_onnx
    from edgeslm.export.onnx import EXPORTER
    from edgeslm.formats.hashing import sha256_file
    from edgeslm.train.run import RunFolder

    folder = make_encoder("distilbert", tmp_path / "tiny-distilbert")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=3).eval()
    model.save_pretrained(run / "model")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    path, names = fp32_onnx(RunFolder(run), model, tokenizer, 32)
    assert names == ["input_ids", "attention_mask"]
    stale = {"weights_sha256": sha256_file(run / "model" / "model.safetensors"), "exporter": EXPORTER,
             "inputs": ["input_ids", "attention_mask", "token_type_ids"]}
    (run / "onnx" / "fp32.json").write_text(json.dumps(stale))
    assert fp32_onnx(RunFolder(run), model, tokenizer, 32)[1] == ["input_ids", "attention_mask"]
