"""Training on the real MiniLM weights and real ha-intents data (small sample), and on other
encoder/decoder families built locally from their configs."""

import json

import pytest

pytestmark = pytest.mark.model


def test_short_real_run_learns_and_records_everything(trained_run):
    record = json.loads((trained_run / "run.json").read_text())
    assert record["steps"] == 200 and record["best_step"] in {h["step"] for h in record["history"]}
    assert len(record["labels"]) >= 35
    # the fixture is trained to be well separated (tests/conftest.py): held-out templates and names
    assert record["metrics"]["val"]["accuracy"] >= 0.9 and record["metrics"]["test"]["accuracy"] >= 0.9
    assert len({ex["label"] for ex in map(json.loads, open(trained_run / "data" / "val.jsonl"))}) >= 35
    assert record["max_length"] == 48 and record["dataset"]["truncated"] == {"train": 0, "val": 0, "test": 0}
    assert (trained_run / "model" / "model.safetensors").is_file()
    assert (trained_run / "model" / "tokenizer.json").is_file()
    assert sum(1 for _ in open(trained_run / "data" / "test.jsonl")) == 300


def test_same_seed_same_result(tmp_path):
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train

    cfg = TrainConfig(max_steps=4, limit_train=128, limit_eval=64, eval_every=4)
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    assert a["history"] == b["history"]


def test_distilbert_family_trains_and_exports_without_token_type_ids(tmp_path):
    """DistilBERT takes no token_type_ids: the bundle must name only the inputs the model has."""
    import shutil

    from transformers import DistilBertConfig, DistilBertModel

    from edgeslm.export.onnx import export_classifier
    from edgeslm.formats.reader import open_bundle
    from edgeslm.models.registry import resolve
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train

    folder = tmp_path / "tiny-distilbert"
    config = DistilBertConfig(vocab_size=30522, dim=64, n_layers=2, n_heads=2, hidden_dim=128)
    DistilBertModel(config).save_pretrained(folder)  # a base encoder, as published
    minilm = resolve("minilm-l6").path
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, folder / name)
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    tok_cfg["model_input_names"] = ["input_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    assert resolve(str(folder)).architecture == "distilbert"

    cfg = TrainConfig(model=str(folder), max_steps=3, limit_train=96, limit_eval=64, eval_every=3)
    train(cfg, tmp_path / "run", progress=False)
    export_classifier(tmp_path / "run", tmp_path / "bundle")
    m = open_bundle(tmp_path / "bundle").manifest
    assert m.architecture == "distilbert" and m.tokenizer["inputs"] == ["input_ids", "attention_mask"]


def test_llama_decoder_from_a_local_safetensors_folder(tmp_path):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from edgeslm.models.loaders import load_decoder
    from edgeslm.models.registry import resolve

    folder = tmp_path / "tiny-llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(folder)
    gguf = resolve("smollm2-135m").path  # SmolLM2's real tokenizer, taken from its GGUF file
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)
    source = resolve(str(folder / "model.safetensors"))
    assert source.family == "decoder" and source.architecture == "llama"
    model, tok = load_decoder(source)
    ids = tok("turn on the lights", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert model(ids).logits.shape == (1, ids.shape[1], 49152)
