"""What the API accepts, written as a spec apart from schemas.py, and request bodies to try it on.

Each `*_problems(body)` returns the set of fields a correct server must refuse (empty: it must
accept the body). The schema's error has to name one of them; an accepted body has to come back
as a request whose fields equal the input. Bodies are drawn field by field from a mix of good
values, near misses (boundaries, wrong types, lone surrogates, NUL) and junk, so that both
accepted and refused bodies are common.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

MAX_TEXT_CHARS, MAX_TEXTS = 2000, 64
MAX_MESSAGES, MAX_MESSAGE_CHARS = 64, 16_000
MAX_TOKENS_LIMIT = 2048
MAX_STOP, MAX_STOP_CHARS = 4, 200
MAX_SEED = 2**32 - 2  # llama.cpp takes 2**32 - 1 for "random"
ROLES = ("system", "user", "assistant")
WORDS = ("on", "off", "weather", "turn", "the", "kitchen", "lights", "lamp", "please", "hello", "garage")

# ---- the spec ----------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def good_text(v: Any, limit: int) -> bool:
    return (isinstance(v, str) and bool(v.strip()) and len(v) <= limit and "\x00" not in v
            and not any(0xD800 <= ord(c) <= 0xDFFF for c in v))  # lone surrogates cannot be encoded


def good_model(v: Any) -> bool:
    return v is None or (isinstance(v, str) and 0 < len(v) <= 200)


def classify_problems(body: Any) -> set[str]:
    if not isinstance(body, dict):
        return {"body"}
    bad = {k for k in body if k not in ("model", "text", "texts")}
    if ("text" in body) == ("texts" in body):
        bad |= {"text", "texts"}
    if "text" in body and not good_text(body["text"], MAX_TEXT_CHARS):
        bad.add("text")
    if "texts" in body:
        t = body["texts"]
        if not (isinstance(t, list) and 0 < len(t) <= MAX_TEXTS and all(good_text(x, MAX_TEXT_CHARS) for x in t)):
            bad.add("texts")
    if not good_model(body.get("model")):
        bad.add("model")
    return bad


CHAT_FIELDS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream",
               "seed", "response_format", "grammar", "n", "user", "stream_options"}


def _good_message(m: Any) -> bool:
    return (isinstance(m, dict) and set(m) <= {"role", "content", "name"} and m.get("role") in ROLES
            and good_text(m.get("content"), MAX_MESSAGE_CHARS))


def _good_stop(s: Any) -> bool:
    return isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS


def _json_format(fmt: Any) -> bool:
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def chat_problems(body: Any, limit: int = MAX_TOKENS_LIMIT) -> set[str]:
    if not isinstance(body, dict):
        return {"body"}
    bad = {k for k in body if k not in CHAT_FIELDS}
    if not good_model(body.get("model")):
        bad.add("model")
    m = body.get("messages")
    if not (isinstance(m, list) and 0 < len(m) <= MAX_MESSAGES and all(map(_good_message, m))):
        bad.add("messages")
    # null means "not given" for every optional field, as OpenAI's clients send it
    for name in ("max_tokens", "max_completion_tokens"):
        v = body.get(name)
        if v is not None and not (_is_int(v) and 1 <= v <= limit):
            bad.add(name)
    for name, high in (("temperature", 2), ("top_p", 1)):
        v = body.get(name)
        if v is not None and not (_is_number(v) and 0 <= v <= high):
            bad.add(name)
    stop = body.get("stop")
    if not (stop is None or _good_stop(stop) or
            (isinstance(stop, list) and len(stop) <= MAX_STOP and all(map(_good_stop, stop)))):
        bad.add("stop")
    if not (body.get("stream") is None or isinstance(body.get("stream"), bool)):  # 0 == False, but 0 is no bool
        bad.add("stream")
    seed = body.get("seed")
    if seed is not None and not (_is_int(seed) and 0 <= seed <= MAX_SEED):
        bad.add("seed")
    n = body.get("n")
    if n is not None and not (_is_int(n) and n == 1):
        bad.add("n")
    grammar = body.get("grammar")
    if grammar is not None and not (isinstance(grammar, str) and grammar.strip() and len(grammar) <= 20_000):
        bad.add("grammar")
    fmt = body.get("response_format")
    if fmt is not None:
        if not (isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object", "json_schema")):
            bad.add("response_format")
        elif fmt["type"] == "json_schema" and not (isinstance(fmt.get("json_schema"), dict)
                                                   and isinstance(fmt["json_schema"].get("schema"), dict)):
            bad.add("response_format")
        elif _json_format(fmt) and grammar is not None:
            bad |= {"grammar", "response_format"}
    return bad


def chat_expected(body: dict[str, Any]) -> dict[str, Any]:
    """The request an accepted chat body must become."""
    fmt = body.get("response_format")
    schema = None
    if _json_format(fmt):
        schema = {"type": "object"} if fmt["type"] == "json_object" else fmt["json_schema"]["schema"]
    stop = body.get("stop")
    max_tokens = body.get("max_completion_tokens")
    return {
        "model": body.get("model"),
        "messages": [{"role": m["role"], "content": m["content"]} for m in body["messages"]],
        "sampling": {
            "max_tokens": max_tokens if max_tokens is not None else (body.get("max_tokens") or 128),
            "temperature": float(body.get("temperature") if body.get("temperature") is not None else 0.0),
            "top_p": float(body.get("top_p") if body.get("top_p") is not None else 1.0),
            "stop": () if stop is None else (stop,) if isinstance(stop, str) else tuple(stop),
            "seed": body.get("seed") or 0,
            "grammar": body.get("grammar"),
            "json_schema": schema,
        },
        "stream": bool(body.get("stream")),
    }


def _tiny_module() -> Any:
    # --import-mode=importlib puts no test folder on sys.path: load the fixture's builder by its path.
    spec = importlib.util.spec_from_file_location("tiny_bundle", Path(__file__).parents[2] / "tiny_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = _tiny_module()


def tiny_answer(text: str, max_length: int = 16) -> tuple[str, float] | None:
    """What the tiny bundle's fixed weights answer, worked out by hand: logit i = SCALE x (count of
    KEYWORDS[i]) / tokens, counting [CLS] and [SEP]; ties go to the first label. None for a text that
    is not plain lowercase words (the tokenizer's Unicode rules are then not worth re-implementing)."""
    if not re.fullmatch(r"[a-z]+( [a-z]+)*", text):
        return None
    words = text.split()[:max_length - 2]
    logits = [TINY.SCALE * words.count(k) / (len(words) + 2) for k in TINY.KEYWORDS]
    best = max(range(len(logits)), key=lambda i: (logits[i], -i))
    return TINY.LABELS[best], 1 / sum(math.exp(v - logits[best]) for v in logits)


# ---- bodies --------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-3, 3000) | st.floats(allow_nan=False) | st.text(max_size=8)
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=6)
surrogate = st.characters(codec=None, categories=["Cs"])


def _near_limit(limit: int) -> st.SearchStrategy[str]:
    return st.builds(lambda n, c: c * n, st.integers(limit - 2, limit + 2), st.sampled_from("ab é"))


def texts_(limit: int) -> st.SearchStrategy[Any]:
    """Mostly good texts; sometimes empty, blank, at or past the limit, with NUL or a lone surrogate."""
    words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=20).map(" ".join)
    return st.one_of(
        words, words, words, st.text(min_size=1, max_size=30),
        st.sampled_from(["", "   ", "\n\t", "on\x00off"]), _near_limit(limit),
        st.builds(lambda a, s, b: a + s + b, words, surrogate, st.text(max_size=3)),
        junk,
    )


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


models = st.one_of(st.none(), st.sampled_from(["tiny-encoder", "nope", "", "x" * 201]), junk)
unknown = st.dictionaries(st.sampled_from(["temperature", "input", "Text", "extra"]), junk, max_size=1)


@st.composite
def classify_bodies(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(junk)  # not an object at all, most of the time
    one = draw(st.sampled_from(["text", "texts", "text", "texts", "both", "neither"]))
    body: dict[str, Any] = {}
    if one in ("text", "both"):
        body["text"] = draw(texts_(MAX_TEXT_CHARS))
    if one in ("texts", "both"):
        body["texts"] = draw(st.one_of(
            st.lists(texts_(MAX_TEXT_CHARS), min_size=1, max_size=6),
            st.lists(st.sampled_from(WORDS), min_size=MAX_TEXTS - 1, max_size=MAX_TEXTS + 1),
            st.just([]), junk))
    if draw(st.booleans()):
        body["model"] = draw(models)
    if draw(st.integers(0, 9)) == 0:
        body.update(draw(unknown))
    return body


messages = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(ROLES), st.sampled_from(ROLES), st.sampled_from(["robot", "", None, 1])),
     "content": texts_(MAX_MESSAGE_CHARS)},
    optional={"name": st.text(max_size=5), "extra": junk})


def _ints(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.integers(low - 1, low + 2), st.integers(high - 1, high + 1),
                     st.integers(low, high), st.booleans(), st.floats(low, high), st.text(max_size=3))


def _numbers(high: float) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.floats(-0.5, high + 0.5), st.integers(-1, 3), st.booleans(),
                     st.sampled_from([math.inf, -math.inf]), st.text(max_size=3))


formats = st.one_of(
    st.none(), st.just({"type": "text"}), st.just({"type": "json_object"}),
    st.fixed_dictionaries({"type": st.just("json_schema"),
                           "json_schema": st.one_of(st.fixed_dictionaries({"name": st.just("x"), "schema": st.just(
                               {"type": "object", "properties": {"a": {"type": "string"}}})}), junk)}),
    st.just({"type": "xml"}), junk)


@st.composite
def chat_bodies(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(junk)
    body = draw(_optional(
        model=models, max_tokens=_ints(1, MAX_TOKENS_LIMIT), max_completion_tokens=_ints(1, MAX_TOKENS_LIMIT),
        temperature=_numbers(2), top_p=_numbers(1),
        stop=st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=3), max_size=5),
                       _near_limit(MAX_STOP_CHARS), st.lists(_near_limit(MAX_STOP_CHARS), max_size=2), junk),
        stream=st.one_of(st.booleans(), st.none(), junk), seed=_ints(0, MAX_SEED),
        response_format=formats, grammar=st.one_of(st.none(), st.just('root ::= "a"'), st.just("  "), junk),
        n=st.one_of(st.none(), st.just(1), st.integers(0, 3), st.booleans(), st.just(1.0)),
        user=junk, stream_options=junk))
    body["messages"] = draw(st.one_of(st.lists(messages, min_size=1, max_size=3), st.lists(messages, min_size=1,
                                      max_size=3), st.just([]), junk))
    if draw(st.integers(0, 4)) == 0:
        del body["messages"]
    if draw(st.integers(0, 9)) == 0:
        body.update(draw(unknown))
    return body
