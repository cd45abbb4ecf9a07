"""An encoder bundle cut into segments with exit heads between them (engine `onnxruntime-early-exit`,
formats/early_exit.py), served with ONNX Runtime.

Early exit at any batch size: the first segment runs on the whole batch; the samples whose exit head
is confident enough leave there, and only the rest go on to the next segment, their hidden states cut
to the longest of them. Also a cheap sentence embedding: the masked mean of the first segment's hidden
states, L2-normalized, for a semantic cache. And, when the bundle carries one, the learned slot tagger's spans from the first
segment's token states (engines/slot_tagger.py): the same pass, one small matrix product more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import BundleError
from edgeslm.formats.early_exit import HIDDEN_IN, HIDDEN_OUT, LOGITS, MASK, POOLED, ExitPlan, read_exit_plan
from edgeslm.formats.ngram_head import NgramHead, read_ngram_head
from edgeslm.formats.slot_tagger import TaggerHead, read_tagger
from edgeslm.runtime.engines.ngrams import NgramClassifier
from edgeslm.runtime.engines.onnx import check_texts, encode_texts, load_session, load_tokenizer
from edgeslm.runtime.engines.slot_tagger import SlotTagger, TaggedSpan

# Each further ORT session's own arena and thread pool. Measured RSS growth for load + a batch of 32 run
# through every segment: 76 MiB for MiniLM-L6's three int8 segments (22 MiB of weights), 56 MiB for the
# same model as one int8 graph, so about 10 MiB per further session; 14 keeps the budget above both.
SESSION_OVERHEAD = 14 * 2**20


@dataclass(frozen=True)
class ExitPass:
    """What one pass over a batch gave."""

    logits: np.ndarray  # [batch, labels], each row from the exit its sample left at
    exit_layer: np.ndarray  # [batch] encoder layers each sample ran
    embedding: np.ndarray | None  # [batch, hidden_size] unit rows, when asked for
    spans: list[list[TaggedSpan]] | None = None  # per sample, the slot tagger's spans, when asked for and there is one


@dataclass(frozen=True)
class FirstPass:
    """The first segment's pass over a batch, which `go_on` finishes."""

    texts: list[str]
    mask: np.ndarray | None  # [batch, tokens] attention mask (None for an empty batch)
    hidden: np.ndarray | None  # [batch, tokens, hidden_size]: the first segment's output
    head: np.ndarray | None  # [batch, labels]: its exit head's logits
    embedding: np.ndarray | None  # [batch, hidden_size] unit rows, when asked for
    spans: list[list[TaggedSpan]] | None = None


class EarlyExitClassifier:
    """predict(texts) -> [{"label", "score", "exit_layer"}]: like OnnxClassifier, plus the encoder layers
    each answer took. ONNX Runtime's workers do not spin by default here (registry.py says why)."""

    embeds = True  # run(texts, embed=True) also gives the first segment's embedding (the semantic cache's key)

    def __init__(self, plan: ExitPlan, segments: Sequence[Path], tokenizer: Path, labels: Sequence[str],
                 max_length: int, input_names: Sequence[str], threads: int | None = None, spin: bool = False,
                 tagger: TaggerHead | None = None, ngram: NgramHead | None = None):
        if len(segments) != len(plan.segments):
            raise BundleError(f"the exit plan has {len(plan.segments)} segments, {len(segments)} files were given")
        self.name = Path(segments[0]).parent.name  # from_bundle names it after the manifest
        self.labels = list(labels)
        self.input_names = list(input_names)
        if MASK not in self.input_names:
            raise BundleError(f"an early-exit encoder needs {MASK} among its inputs (the later segments take it), "
                              f"the manifest names {self.input_names}")
        self.plan = plan
        self.layers = [s.layers for s in plan.segments]
        self.thresholds = [s.threshold for s in plan.exits]
        self.tokenizer = load_tokenizer(tokenizer, max_length)
        self.sessions, self.model_bytes = [], 0
        for i, path in enumerate(segments):
            session, size = load_session(path, threads, spin)
            self._check_segment(session, i, path)
            self.sessions.append(session)
            self.model_bytes += size
        self.first_inputs = [i.name for i in self.sessions[0].get_inputs()]
        self.tagger = None if tagger is None else SlotTagger(tagger, plan.segments[0].layers, plan.hidden_size)
        # the bundle's n-gram head (engines/ngrams.py): the assistant's look before the first segment runs
        self.ngrams = None if ngram is None else NgramClassifier(ngram)

    @classmethod
    def from_bundle(cls, bundle: Any, threads: int | None = None, spin: bool = False) -> EarlyExitClassifier:
        m = bundle.manifest
        if m.task != "text-classification":
            raise BundleError(f"{bundle.path}: a {m.task} bundle is not a classifier")
        plan = read_exit_plan(bundle)
        engine = cls(plan, [bundle.file(s.file) for s in plan.segments], bundle.file(m.tokenizer["file"]), m.labels,
                     m.tokenizer["max_length"], m.tokenizer.get("inputs", ["input_ids", "attention_mask"]), threads, spin,
                     read_tagger(bundle), read_ngram_head(bundle))
        engine.name = m.name
        return engine

    def _check_segment(self, session: Any, i: int, path: Path) -> None:
        """The segment has the inputs and outputs its place in the plan needs, so a file swapped for
        another segment or another model is refused at load, not at the first request."""
        last = i == len(self.plan.segments) - 1
        inputs = {x.name for x in session.get_inputs()}
        outputs = {x.name: x.shape for x in session.get_outputs()}
        want_in = None if i == 0 else {HIDDEN_IN, MASK}
        want_out = {LOGITS} if last else {HIDDEN_OUT, POOLED, LOGITS}
        where = f"{path}: segment {i + 1} of {len(self.plan.segments)}"
        if want_in is None and not inputs <= set(self.input_names):
            raise BundleError(f"{where} wants inputs {sorted(inputs - set(self.input_names))} that the manifest does not name")
        if want_in is not None and inputs != want_in:
            raise BundleError(f"{where} takes {sorted(inputs)}, not the previous segment's {sorted(want_in)}")
        if not want_out <= set(outputs):
            raise BundleError(f"{where} gives {sorted(outputs)}, missing {sorted(want_out - set(outputs))}")
        width = outputs[LOGITS][-1] if outputs[LOGITS] else None
        if isinstance(width, int) and width != len(self.labels):
            raise BundleError(f"{where} has {width} logits but the manifest lists {len(self.labels)} labels")
        for name in (HIDDEN_OUT, POOLED):
            width = outputs[name][-1] if name in outputs and outputs[name] else None
            if isinstance(width, int) and width != self.plan.hidden_size:
                raise BundleError(f"{where}: {name} is {width} wide, the exit plan says {self.plan.hidden_size}")

    def memory_bytes(self) -> int:
        """OnnxClassifier's budget for the same weights (1.2x plus 24 MiB), plus each further session's overhead."""
        return int(self.model_bytes * 1.2) + 24 * 2**20 + SESSION_OVERHEAD * (len(self.sessions) - 1)

    def close(self) -> None:
        self.sessions = []  # ORT frees a session when the last reference goes

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return encode_texts(self.tokenizer, texts, self.input_names)

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return self._results(self.run(texts))

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """[batch, labels]: each row from the exit its sample left at (what the encoder tier conditions)."""
        return self.run(texts).logits

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[batch, hidden_size] float32, unit length: the first segment's mean-pooled hidden state."""
        check_texts(texts)
        if not texts:
            return np.zeros((0, self.plan.hidden_size), dtype=np.float32)
        feeds = self.encode(texts)
        pooled = self.sessions[0].run([POOLED], {k: feeds[k] for k in self.first_inputs})[0]
        return _unit(pooled)

    def predict_and_embed(self, texts: Sequence[str]) -> tuple[list[dict[str, Any]], np.ndarray]:
        """predict() and embed() from one pass: the first segment runs once for both."""
        out = self.run(texts, embed=True)
        assert out.embedding is not None
        return self._results(out), out.embedding

    def run(self, texts: Sequence[str], embed: bool = False, spans: bool = False) -> ExitPass:
        """One pass over the batch: every sample leaves at the first exit confident enough, and only
        those still running go on to the next segment. spans=True: also the slot tagger's spans (None
        when the bundle carries no tagger)."""
        return self.go_on(self.first(texts, embed, spans))

    def first(self, texts: Sequence[str], embed: bool = False, spans: bool = False) -> FirstPass:
        """The first segment alone: its exit head, and the embedding and tagger spans that come from it.
        `go_on` finishes the pass from here; a caller that needs only the embedding (a semantic cache
        lookup that hits) stops here and pays nothing more."""
        check_texts(texts)
        n = len(texts)
        embedding = np.zeros((n, self.plan.hidden_size), dtype=np.float32) if embed else None
        if not n:
            return FirstPass([], None, None, None, embedding, [] if spans and self.tagger else None)
        feeds = self.encode(texts)
        tagged: list[list[TaggedSpan]] | None = None
        hidden, pooled, head = self.sessions[0].run([HIDDEN_OUT, POOLED, LOGITS], {k: feeds[k] for k in self.first_inputs})
        if embedding is not None:
            embedding[:] = _unit(pooled)
        if spans and self.tagger is not None:
            tagged = self.tagger.tag(hidden, feeds[MASK], self.offsets(texts), list(texts))
        return FirstPass(list(texts), feeds[MASK], hidden, head, embedding, tagged)

    def go_on(self, start: FirstPass) -> ExitPass:
        """The rest of the pass `first` began: the samples the first exit head is sure of leave with its
        logits, the others run on through the later segments."""
        n = len(start.texts)
        logits = np.zeros((n, len(self.labels)), dtype=np.float32)
        exit_layer = np.zeros(n, dtype=np.int64)
        if not n:
            return ExitPass(logits, exit_layer, start.embedding, start.spans)
        assert start.mask is not None and start.hidden is not None and start.head is not None
        mask, hidden, head = start.mask, start.hidden, start.head
        alive = np.arange(n)  # rows of the batch still running
        for i in range(1, len(self.sessions)):  # a plan has at least two segments (formats/early_exit.py)
            t = self.thresholds[i - 1]  # the exit after segment i
            leave = _confidence(head) >= t if t is not None else np.zeros(len(alive), dtype=bool)
            logits[alive[leave]] = head[leave]
            exit_layer[alive[leave]] = self.layers[i - 1]
            if leave.all():
                break
            stay = ~leave
            alive = alive[stay]
            rest = mask[alive]
            width = int(np.flatnonzero(rest.any(axis=0)).max()) + 1  # the longest remaining text; the rest is padding
            feed = {HIDDEN_IN: np.ascontiguousarray(hidden[stay, :width]), MASK: np.ascontiguousarray(rest[:, :width])}
            if i == len(self.sessions) - 1:
                logits[alive] = self.sessions[i].run([LOGITS], feed)[0]
                exit_layer[alive] = self.layers[i]
                break
            hidden, _, head = self.sessions[i].run([HIDDEN_OUT, POOLED, LOGITS], feed)
        return ExitPass(logits, exit_layer, start.embedding, start.spans)

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Each word piece's character offsets in its text, as the feeds were encoded (about 20 µs a
        short command: cheaper than threading encodings through encode_texts)."""
        if len(texts) == 1:
            return [self.tokenizer.encode(texts[0]).offsets]
        return [e.offsets for e in self.tokenizer.encode_batch(list(texts))]

    def _results(self, out: ExitPass) -> list[dict[str, Any]]:
        best = out.logits.argmax(axis=-1)
        scores = _confidence(out.logits)
        return [{"label": self.labels[b], "score": float(s), "exit_layer": int(e)}
                for b, s, e in zip(best, scores, out.exit_layer, strict=True)]

    def all_exits(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Every exit head's logits and the full model's, [batch, labels] each in plan order, with no
        sample leaving early: what thresholds are calibrated on."""
        check_texts(texts)
        feeds = self.encode(texts)
        feed = {name: feeds[name] for name in self.first_inputs}
        out = []
        for i, session in enumerate(self.sessions):
            if i == len(self.sessions) - 1:
                out.append(session.run([LOGITS], feed)[0])
            else:
                hidden, head = session.run([HIDDEN_OUT, LOGITS], feed)
                out.append(head)
                feed = {HIDDEN_IN: hidden, MASK: feeds[MASK]}
        return out


def _confidence(logits: np.ndarray) -> np.ndarray:
    """[N, K] -> [N] softmax probability of the winner: 1 / sum(exp(logit - max))."""
    return 1.0 / np.exp(logits - logits.max(axis=-1, keepdims=True)).sum(axis=-1)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
