"""GGUF conversion and llama.cpp quantization: the rope permutation from its definition, a tiny LLaMA
converted and checked against PyTorch, the whole flow to a bundle, and the real SmolLM2 model."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeslm.errors import ConfigError, EdgeslmError

TEXT = ("The living room lights were still on when the storm reached the valley. She checked the thermostat, "
        "closed the blinds in the kitchen and asked the speaker to play the evening news. ") * 20


def gguf_recipe(qtype="Q8_0", ceiling=1.5, **config):
    from edgeslm.compress.recipe import Recipe

    return Recipe.from_dict({"name": f"test-{qtype}", "families": ["decoder"], "ceiling": ceiling,
                             "modifiers": [{"type": "quantize-gguf", "qtype": qtype, **config}]})


def hf_rope(x, theta):  # x (head_dim,): pairs (i, i + d/2), Hugging Face's rotate_half
    half = len(x) // 2
    cos, sin = np.cos(np.concatenate([theta, theta])), np.sin(np.concatenate([theta, theta]))
    rotated = np.concatenate([-x[half:], x[:half]])
    return x * cos + rotated * sin


def ggml_rope(x, theta):  # x (head_dim,): adjacent pairs (2i, 2i + 1), GGML's LLaMA rope
    out = x.copy()
    out[0::2] = x[0::2] * np.cos(theta) - x[1::2] * np.sin(theta)
    out[1::2] = x[0::2] * np.sin(theta) + x[1::2] * np.cos(theta)
    return out


def test_permutation_turns_hf_rope_into_ggml_rope():
    from edgeslm.export.gguf import permute_rope_rows

    rng = np.random.default_rng(0)
    n_head, head_dim, width = 3, 8, 5
    w = rng.standard_normal((n_head * head_dim, width))
    h = rng.standard_normal(width)
    theta = rng.uniform(0, 3, head_dim // 2)
    hf = (w @ h).reshape(n_head, head_dim)
    ggml = (permute_rope_rows(w, n_head) @ h).reshape(n_head, head_dim)
    for k in range(n_head):  # rotating then permuting == permuting then rotating the GGML way
        want = permute_rope_rows(hf_rope(hf[k], theta)[:, None], 1)[:, 0]
        assert np.allclose(ggml_rope(ggml[k], theta), want)
    assert permute_rope_rows(np.arange(8.0), 1).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_windows_score_every_token_once_and_nll():
    from edgeslm.evaluate.perplexity import token_nll, windows

    for n, ctx, stride in ((10, 4, 2), (1000, 512, 256), (512, 512, 256), (7, 512, 256), (33, 8, 7)):
        scored = [p for b, e, f in windows(n, ctx, stride) for p in range(f, e)]
        assert scored == list(range(1, n)) and all(e - b <= ctx and f > b for b, e, f in windows(n, ctx, stride))
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    assert np.allclose(token_nll(logits, np.array([0, 2])), -np.log([0.5, 0.8]))


def test_rope_theta_from_either_transformers_config_style():
    from edgeslm.export.gguf import rope_theta

    assert rope_theta({"rope_theta": 5e5}) == 5e5
    assert rope_theta({"rope_parameters": {"rope_theta": 1e5, "rope_type": "default"}}) == 1e5
    assert rope_theta({}) == 1e4


def test_config_refuses_unknown_types_and_bad_windows():
    from edgeslm.compress.modifiers import GgufQuantConfig
    from edgeslm.compress.recipe import Recipe, load_recipe

    with pytest.raises(ConfigError, match="supported: Q8_0, .*Q4_K_M"):
        GgufQuantConfig(qtype="Q9_9")
    with pytest.raises(ConfigError, match="stride"):
        GgufQuantConfig(stride=1024)
    assert GgufQuantConfig.from_dict(GgufQuantConfig(qtype="Q4_K_M").to_dict()).qtype == "Q4_K_M"
    # the recipes: decoders have a perplexity ceiling and one modifier; encoders keep their floor
    for name, qtype in (("gguf-q8_0", "Q8_0"), ("gguf-q4_k_m", "Q4_K_M")):
        r = load_recipe(name)
        assert r.families == ("decoder",) and r.gguf.qtype == qtype and 1 < r.ceiling < 1.2
        assert Recipe.from_dict(r.to_dict()) == r
    with pytest.raises(ConfigError, match="needs one"):
        gguf_recipe(ceiling=None)
    with pytest.raises(ConfigError, match="needs one"):
        gguf_recipe(ceiling=0.9)  # a ceiling below the unquantized file's perplexity: nothing could pass
    with pytest.raises(ConfigError, match="one modifier, quantize-gguf"):
        Recipe.from_dict({"name": "mixed", "families": ["encoder"], "modifiers": [{"type": "quantize-gguf"}]})
    with pytest.raises(ConfigError, match="encoder recipes have a floor"):
        Recipe.from_dict({"name": "e", "ceiling": 1.1, "modifiers": [{"type": "quantize"}]})


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer LLaMA (random weights) with its own small byte-level BPE tokenizer: fast to convert."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=416, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                         tie_word_embeddings=False, bos_token_id=0, eos_token_id=0))
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder, model, fast


def test_tiny_llama_converts_and_matches_pytorch(tiny_llama, tmp_path):
    import llama_cpp
    import torch

    from edgeslm.compress.gguf import quantize_file
    from edgeslm.export.gguf import hf_to_gguf

    folder, model, tok = tiny_llama
    info = hf_to_gguf(folder, tmp_path / "tiny.F16.gguf")
    assert info["tokenizer_pre"] == "gpt-2" and info["vocab"] == 416
    sentence = "She closed the blinds in the kitchen."
    ids = tok(sentence)["input_ids"]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    llm = llama_cpp.Llama(str(tmp_path / "tiny.F16.gguf"), n_ctx=64, logits_all=True, verbose=False)
    try:
        assert llm.tokenize(sentence.encode(), add_bos=True, special=False) == ids  # same tokens, no BOS added
        llm.eval(ids)
        got = llm.scores[:len(ids)]
    finally:
        llm.close()
    assert np.abs(got - want).max() < 5e-3 and (got.argmax(1) == want.argmax(1)).all()

    quantize_file(tmp_path / "tiny.F16.gguf", tmp_path / "tiny.Q8_0.gguf", "Q8_0")
    llm = llama_cpp.Llama(str(tmp_path / "tiny.Q8_0.gguf"), n_ctx=64, logits_all=True, verbose=False)
    try:
        llm.eval(ids)
        q8 = llm.scores[:len(ids)].copy()
    finally:
        llm.close()
    assert np.isfinite(q8).all() and np.abs(q8 - want).max() < 0.05
    assert (tmp_path / "tiny.Q8_0.gguf").stat().st_size < (tmp_path / "tiny.F16.gguf").stat().st_size


def test_tiny_llama_to_bundle(tiny_llama, tmp_path):
    from edgeslm.compress.pipeline import compress
    from edgeslm.formats.reader import open_bundle

    folder, _, _ = tiny_llama
    text = tmp_path / "heldout.txt"
    text.write_text(TEXT, encoding="utf-8")
    recipe = gguf_recipe("Q4_K_M", ceiling=1.05, eval_tokens=300, n_ctx=128, stride=64)
    m = compress(str(folder / "model.safetensors"), recipe, tmp_path / "tiny-q4", eval_text=text)["manifest"]
    bundle = open_bundle(tmp_path / "tiny-q4")  # verifies every hash
    c = bundle.manifest.provenance["compression"]
    assert m["model_file"] == "tiny-llama.Q4_K_M.gguf" and bundle.manifest.family == "decoder"
    assert c["type"] == "Q4_K_M" and c["eval_text"] == "heldout.txt" and c["eval_tokens"] == 300
    assert c["bytes_after"] == bundle.model_path.stat().st_size < c["bytes_before"]
    assert c["size_ratio"] == pytest.approx(c["bytes_after"] / c["bytes_before"], abs=1e-4)
    # random weights (std 0.02) give near-uniform next-token odds: perplexity near the 416-token vocabulary,
    # and 4-bit noise on near-uniform logits moves it by well under 3% (measured 422.5 -> 422.0)
    assert 0.8 * 416 < c["perplexity_before"] < 1.2 * 416
    assert c["ppl_ratio"] == pytest.approx(c["perplexity_after"] / c["perplexity_before"], abs=1e-3)
    assert 0.97 < c["ppl_ratio"] < 1.03
    assert not list(tmp_path.glob(".tiny-q4.convert.*"))  # the F16 file and any scratch are gone
    assert bundle.manifest.provenance["recipe"] == recipe.to_dict() and c["ceiling"] == 1.05
    assert c["attempts"] == [{"embeddings_q8_0": False, "perplexity": c["perplexity_after"]}]

    from click.testing import CliRunner

    from edgeslm.cli.main import cli

    out = CliRunner().invoke(cli, ["compare", str(tmp_path / "tiny-q4")])
    assert out.exit_code == 0, out.output
    assert "Q4_K_M" in out.output and f"{c['ppl_ratio']:.3f}" in out.output


def test_refuses_what_it_cannot_convert(tmp_path):
    from edgeslm.compress.gguf import compress_decoder
    from edgeslm.errors import GgufError

    qwen = tmp_path / "qwen"
    qwen.mkdir()
    (qwen / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (qwen / "model.safetensors").write_bytes(b"")
    with pytest.raises(GgufError, match="LLaMA-architecture decoders only"):
        compress_decoder(str(qwen), gguf_recipe(), tmp_path / "out")
    with pytest.raises(EdgeslmError, match="encoder"):
        compress_decoder("minilm-l6", gguf_recipe(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_errors_are_one_line():
    r = subprocess.run([sys.executable, "-m", "edgeslm.cli.main", "quantize-gguf", "smollm2-135m", "--type", "Q9",
                        "--out", "/nonexistent/x", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "supported: Q8_0" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "edgeslm.cli.main", "quantize-gguf", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "--json" in r.stdout and "--eval-text" in r.stdout


@pytest.mark.model
def test_smollm2_f16_conversion_matches_the_original_and_q8_keeps_quality(tmp_path):
    """The built-in Q4_1 GGUF, dequantized through transformers and written back as F16 by our converter,
    scores the held-out text like the original file does, and its Q8_0 bundle still answers."""
    from edgeslm.compress.pipeline import compress
    from edgeslm.compress.recipe import Recipe, load_recipe
    from edgeslm.evaluate.perplexity import default_eval_text, perplexity
    from edgeslm.models.registry import resolve
    from edgeslm.runtime.engines.llama import LlamaEngine, collect

    recipe = load_recipe("gguf-q8_0").to_dict()
    recipe["modifiers"][0]["eval_tokens"] = 512
    m = compress("smollm2-135m", Recipe.from_dict(recipe), tmp_path / "smol-q8")["manifest"]
    c = m["provenance"]["compression"]
    original = perplexity(resolve("smollm2-135m").path, default_eval_text()[1], max_tokens=512)
    assert c["eval_tokens"] == original["tokens"] == 512  # same tokenizer, same tokens
    assert c["perplexity_before"] == pytest.approx(original["perplexity"], rel=0.03)
    assert c["ppl_ratio"] == pytest.approx(1.0, abs=0.03) and 0.5 < c["size_ratio"] < 0.56
    assert "already lie on that quantization grid" in c["note"]
    from edgeslm.formats.gguf import read_header

    meta = read_header(tmp_path / "smol-q8" / m["model_file"]).metadata
    assert meta["llama.rope.freq_base"] == 100000.0 and meta["tokenizer.ggml.pre"] == "smollm"
    # The Q8_0 bundle answers through the engine, the same answer each time. Its quality is the perplexity ratio
    # above (teacher-forced, 512 held-out tokens). Not compared: the greedy answers of the two files. A 135M model's
    # first answer token is a near tie that kernels and quantization grids break either way: on an AVX2-only EPYC
    # both files said "L'Étoile, ..."; on a Zen 4 with AVX-512 VNNI the Q4_1 original said "L'Étoile, ..." and the
    # Q8_0 "The capital of France is Paris." (2026-12-04).
    question = [{"role": "user", "content": "What is the capital of France?"}]
    with LlamaEngine(tmp_path / "smol-q8" / m["model_file"], threads=2, n_ctx=256) as engine:
        answers = [collect(engine.chat(question, max_tokens=16, temperature=0))[0] for _ in range(2)]
    assert answers[0].strip() and answers[0] == answers[1], answers
