"""The llama.cpp decoder engine on the real SmolLM2-135M bundle: streaming, stops, grammars, the lock."""

import json
import subprocess
import sys
import textwrap
import threading
from types import SimpleNamespace

import pytest
from hypothesis import given, settings

from edgeslm.errors import BundleError
from edgeslm.runtime.server.errors import HttpError
from edgeslm.runtime.server.schemas import parse_chat

from .sampling_cases import CASES, N_CTX, combinations, http_body, present

pytestmark = pytest.mark.model

ASK = [{"role": "system", "content": "You are a concise assistant."},
       {"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def smol_bundle(tmp_path_factory):
    from edgeslm.export.gguf import export_gguf

    out = tmp_path_factory.mktemp("decoder") / "smollm2"
    export_gguf("smollm2-135m", out)
    return out


@pytest.fixture(scope="module")
def engine(smol_bundle):
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.llama import LlamaEngine

    e = LlamaEngine.from_bundle(open_bundle(smol_bundle), threads=2, n_ctx=N_CTX)
    yield e
    e.close()


def test_stream_concatenates_to_llama_cpp_own_non_streamed_text(engine, smol_bundle):
    import llama_cpp

    from edgeslm.runtime.engines.llama import DoneEvent, TextEvent

    prompt = "The three primary colors are"
    events = list(engine.complete(prompt, max_tokens=24, temperature=0))
    pieces = [e.text for e in events if isinstance(e, TextEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent) and len(pieces) > 3 and all(pieces)
    assert done.prompt_tokens == len(engine.tokenize(prompt)) and 1 <= done.completion_tokens <= 24
    assert done.time_to_first_token_s > 0 and done.decode_tokens_per_s > 0

    raw = llama_cpp.Llama(str(engine.model_path), n_threads=2, n_ctx=512, verbose=False,
                          chat_format="chat_template.default")
    try:
        want = raw(prompt, max_tokens=24, temperature=0, repeat_penalty=1.0)["choices"][0]["text"]
        want_chat = raw.create_chat_completion(ASK, max_tokens=24, temperature=0, repeat_penalty=1.0)
    finally:
        raw.close()
    assert "".join(pieces) == want
    from edgeslm.runtime.engines.llama import collect

    text, done = collect(engine.chat(ASK, max_tokens=24, temperature=0))
    assert text == want_chat["choices"][0]["message"]["content"]
    assert "Paris" in text and done.finish_reason == "stop"


def test_kv_cache_of_the_previous_prompt_is_reused(engine):
    from edgeslm.runtime.engines.llama import collect

    engine.reset()
    first, d1 = collect(engine.chat(ASK, max_tokens=12, temperature=0))
    again, d2 = collect(engine.chat(ASK, max_tokens=12, temperature=0))
    assert d1.cached_tokens == 0
    assert d2.cached_tokens == d2.prompt_tokens - 1  # only the last prompt token is evaluated again
    assert first == again


def test_stop_sequence_ends_the_text_before_it(engine):
    from edgeslm.runtime.engines.llama import collect

    full, _ = collect(engine.chat(ASK, max_tokens=24, temperature=0))
    word = "Paris"
    assert word in full
    text, done = collect(engine.chat(ASK, max_tokens=24, temperature=0, stop=[word, "zzz"]))
    assert text == full[:full.index(word)] and done.finish_reason == "stop"


def test_max_tokens_gives_length(engine):
    from edgeslm.runtime.engines.llama import collect

    _, done = collect(engine.complete("Once upon a time", max_tokens=3, temperature=0.8, seed=7))
    assert done.finish_reason == "length" and done.completion_tokens == 3


def test_json_schema_output_parses_and_matches(engine):
    from edgeslm.runtime.engines.llama import collect

    schema = {"type": "object", "properties": {"room": {"type": "string", "enum": ["kitchen", "bedroom", "hall"]},
                                               "on": {"type": "boolean"}}, "required": ["room", "on"]}
    msgs = [{"role": "user", "content": "Turn on the kitchen light. Reply in JSON."}]
    text, done = collect(engine.chat(msgs, max_tokens=40, temperature=0, json_schema=schema))
    value = json.loads(text)
    assert value["room"] in ("kitchen", "bedroom", "hall") and isinstance(value["on"], bool)
    assert done.finish_reason == "stop"


def test_gbnf_grammar_constrains_and_bad_grammar_is_a_value_error(engine):
    from edgeslm.runtime.engines.llama import collect

    text, _ = collect(engine.chat(ASK, max_tokens=8, temperature=0.7, seed=3, grammar='root ::= "yes" | "no"'))
    assert text in ("yes", "no")
    with pytest.raises(ValueError, match="not valid GBNF: Undefined rule identifier 'foo'"):
        engine.chat(ASK, grammar="root ::= foo")
    with pytest.raises(ValueError, match="json_schema"):
        engine.chat(ASK, json_schema={"type": "nonsense"})


@pytest.mark.parametrize("kwargs, match", [
    ({"messages": [{"role": "robot", "content": "hi"}]}, "role must be one of"),
    ({"messages": [{"role": "user", "content": 3}]}, "content must be a string"),
    ({"messages": []}, "non-empty list"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 513}, "max_tokens"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
    ({"stop": [""]}, "non-empty"),
    ({"grammar": 'root ::= "a"', "json_schema": {"type": "string"}}, "not both"),
])
def test_invalid_requests_are_value_errors(engine, kwargs, match):
    args = {"messages": ASK, **kwargs}
    with pytest.raises(ValueError, match=match):
        engine.chat(**args)


def engine_accepts(engine, fields: dict) -> bool:
    try:
        engine.complete("The capital of France is", **present(fields)).close()  # checked; nothing generated
    except ValueError:
        return False
    return True


def http_accepts(fields: dict) -> bool:
    try:
        parse_chat(http_body(fields), max_tokens_limit=N_CTX)
    except HttpError:
        return False
    return True


@pytest.mark.parametrize("fields, ok", CASES, ids=[f"{next(iter(f))}={next(iter(f.values()))!r:.20}" for f, _ in CASES])
def test_each_sampling_boundary_is_taken_alike_by_engine_and_http_schema(engine, fields, ok):
    assert engine_accepts(engine, fields) == http_accepts(fields) == ok


@settings(max_examples=150, deadline=None)
@given(case=combinations())
def test_sampling_combinations_are_taken_alike_by_engine_and_http_schema(engine, case):
    fields, ok = case
    assert engine_accepts(engine, fields) == http_accepts(fields) == ok


def test_concurrent_requests_are_serialized(engine):
    from edgeslm.runtime.engines.llama import collect

    results, errors = [], []

    def ask() -> None:
        try:
            results.append(collect(engine.chat(ASK, max_tokens=8, temperature=0))[0])
        except Exception as exc:  # noqa: BLE001 - the test reports any failure in a thread
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 3 and len(set(results)) == 1


def test_memory_estimate_is_file_plus_kv_cache(engine):
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 dims; n_ctx 512; K and V in f16
    assert engine.memory_bytes() == engine.model_path.stat().st_size + 512 * 30 * 3 * 64 * 2 * 2


def test_wrong_family_and_missing_package(tmp_path, monkeypatch, smol_bundle):
    from edgeslm.runtime.engines.llama import LlamaEngine

    encoder = SimpleNamespace(path=tmp_path, manifest=SimpleNamespace(family="encoder", task="text-classification",
                                                                       engine="onnxruntime"))
    with pytest.raises(BundleError, match="not a decoder"):
        LlamaEngine.from_bundle(encoder)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    with pytest.raises(BundleError, match=r"pip install 'edgeslm\[device\]'"):
        LlamaEngine(smol_bundle / "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_closed_engine_refuses(smol_bundle):
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.llama import LlamaEngine

    with LlamaEngine.from_bundle(open_bundle(smol_bundle), threads=1, n_ctx=64) as e:
        pass
    with pytest.raises(BundleError, match="closed"):
        e.complete("hello")


def test_engine_and_bench_import_without_torch():
    block = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'transformers'):
                    raise ImportError('blocked for this test: ' + name)
        sys.meta_path.insert(0, Block())
        import edgeslm.runtime.engines.llama, edgeslm.bench.decoder
        assert 'torch' not in sys.modules and 'transformers' not in sys.modules
        print('ok')
    """)
    r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_prompts_kv_cache_written_to_a_file_is_read_back_by_another_engine(engine, smol_bundle, tmp_path):
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.llama import LlamaEngine, collect

    prefix = "Answer with one word.\n" + "".join(f"Q: what colour is item {i}? A: red\n" for i in range(12))
    tokens = engine.tokenize(prefix)
    engine.reset()
    engine.prefill(tokens)
    state = tmp_path / "prefix.kvstate"
    engine.save_prompt(state)
    assert state.stat().st_size > 0 and not list(tmp_path.glob("*.tmp"))
    want, cold = collect(engine.complete(prefix + "Q: what colour is the sky? A:", max_tokens=8, temperature=0))
    assert cold.cached_tokens == len(tokens)  # prefill() filled the cache the request reused

    other = LlamaEngine.from_bundle(open_bundle(smol_bundle), threads=2, n_ctx=N_CTX)
    try:
        assert other.load_prompt(state, tokens)
        got, warm = collect(other.complete(prefix + "Q: what colour is the sky? A:", max_tokens=8, temperature=0))
        assert got == want and warm.cached_tokens == len(tokens)
        # another prompt's tokens, a truncated file, a missing one: refused, and the engine starts clean
        assert not other.load_prompt(state, tokens[:-1])
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
        assert not other.load_prompt(state, tokens)
        assert not other.load_prompt(tmp_path / "missing.kvstate", tokens)
        again, d = collect(other.complete(prefix + "Q: what colour is the sky? A:", max_tokens=8, temperature=0))
        assert again == want and d.cached_tokens == 0
    finally:
        other.close()
