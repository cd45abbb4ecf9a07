"""A strict parser of the Prometheus text exposition format (version 0.0.4), for tests.

Strict on purpose: it refuses what Prometheus' own parser refuses (bad names, bad escapes, a
sample before its TYPE, a family split in two, a duplicate series, a value that is not a Go float)
and checks what the format promises about histograms (cumulative buckets, +Inf equal to _count).
Written here because prometheus_client is not a dependency of the device side.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


class FormatError(AssertionError):
    pass


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str | None = None
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, sample: str = "", **labels: str) -> float:
        """The value of one series; `sample` is a suffix such as "_sum" ("" for the family's own name)."""
        for name, lab, v in self.samples:
            if name == self.name + sample and lab == labels:
                return v
        raise KeyError(f"{self.name}{sample}{labels} not exposed")


def parse(text: str) -> dict[str, Family]:
    if text and not text.endswith("\n"):
        raise FormatError("the exposition must end with a newline")
    families: dict[str, Family] = {}
    finished: set[str] = set()  # families whose samples are over: seeing one again means it was split
    current: str | None = None
    seen: set[tuple[str, tuple]] = set()
    for number, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {number}: {line[:80]!r}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    raise FormatError(f"{where}: bad metric name")
                family = families.setdefault(name, Family(name))
                if parts[1] == "HELP":
                    if family.help is not None:
                        raise FormatError(f"{where}: second HELP for {name}")
                    family.help = _unescape(parts[3] if len(parts) > 3 else "", help_text=True, where=where)
                else:
                    kind = parts[3] if len(parts) > 3 else ""
                    if kind not in TYPES:
                        raise FormatError(f"{where}: unknown type {kind!r}")
                    if family.samples or name in finished:
                        raise FormatError(f"{where}: TYPE after the family's samples")
                    family.type = kind
                if current is not None and current != name:
                    finished.add(current)
                current = name
            continue
        name, labels, value = _sample(line, where)
        family_name = _family_of(name, families)
        if family_name in finished:
            raise FormatError(f"{where}: samples of {family_name} are not together")
        if current is not None and current != family_name:
            finished.add(current)
        current = family_name
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise FormatError(f"{where}: duplicate series")
        seen.add(key)
        families.setdefault(family_name, Family(family_name)).samples.append((name, labels, value))
    for family in families.values():
        if family.type == "histogram":
            _check_histogram(family)
        if family.type == "counter":
            for name, labels, v in family.samples:
                if v < 0 or math.isnan(v):
                    raise FormatError(f"counter {name}{labels} is {v}")
    return families


def _family_of(name: str, families: dict[str, Family]) -> str:
    if name in families and families[name].type not in SUFFIXES:
        return name
    for family in families.values():
        for suffix in SUFFIXES.get(family.type, ()):
            if suffix and name == family.name + suffix:
                return family.name
    return name


def _sample(line: str, where: str) -> tuple[str, dict[str, str], float]:
    m = NAME.match(line)
    if not m:
        raise FormatError(f"{where}: a sample must start with a metric name")
    name, rest = m.group(), line[m.end():]
    labels: dict[str, str] = {}
    if rest.startswith("{"):
        i = 1
        while True:
            if rest[i:i + 1] == "}":
                i += 1
                break
            lm = LABEL.match(rest, i)
            if not lm or rest[lm.end():lm.end() + 2] != '="':
                raise FormatError(f"{where}: bad label at column {i}")
            label, i = lm.group(), lm.end() + 2
            if label in labels:
                raise FormatError(f"{where}: label {label} twice")
            chars = []
            while True:
                if i >= len(rest):
                    raise FormatError(f"{where}: unterminated label value")
                c = rest[i]
                if c == "\\":
                    nxt = rest[i + 1:i + 2]
                    if nxt not in ("\\", '"', "n"):
                        raise FormatError(f"{where}: bad escape \\{nxt} in a label value")
                    chars.append("\n" if nxt == "n" else nxt)
                    i += 2
                elif c == '"':
                    i += 1
                    break
                elif c == "\n":
                    raise FormatError(f"{where}: raw newline in a label value")
                else:
                    chars.append(c)
                    i += 1
            labels[label] = "".join(chars)
            if rest[i:i + 1] == ",":
                i += 1
            elif rest[i:i + 1] != "}":
                raise FormatError(f"{where}: expected , or }} after a label")
        rest = rest[i:]
    if not rest.startswith(" "):
        raise FormatError(f"{where}: no space before the value")
    fields = rest[1:].split(" ")
    if len(fields) not in (1, 2) or (len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1])):
        raise FormatError(f"{where}: expected a value and an optional integer timestamp")
    return name, labels, _float(fields[0], where)


def _float(text: str, where: str) -> float:
    special = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf}
    if text in special:
        return special[text]
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise FormatError(f"{where}: {text!r} is not a valid value")
    return float(text)


def _unescape(text: str, help_text: bool, where: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            nxt = text[i + 1:i + 2]
            if nxt == "n":
                out.append("\n")
            elif nxt == "\\":
                out.append("\\")
            else:
                raise FormatError(f"{where}: bad escape \\{nxt} in HELP")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _check_histogram(family: Family) -> None:
    series: dict[tuple, dict[str, object]] = {}
    for name, labels, v in family.samples:
        suffix = name[len(family.name):]
        if suffix not in SUFFIXES["histogram"]:
            raise FormatError(f"histogram {family.name} has a sample {name}")
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": []})
        if suffix == "_bucket":
            if "le" not in labels:
                raise FormatError(f"{name}{labels}: a bucket without le")
            s["buckets"].append((_float(labels["le"], name), v))  # type: ignore[union-attr]
        else:
            if "le" in labels:
                raise FormatError(f"{name}{labels}: le on {suffix}")
            s[suffix] = v
    for rest, s in series.items():
        buckets = s["buckets"]
        bounds = [b for b, _ in buckets]  # type: ignore[union-attr]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise FormatError(f"{family.name}{rest}: bucket bounds not increasing: {bounds}")
        if not bounds or bounds[-1] != math.inf:
            raise FormatError(f"{family.name}{rest}: no le=\"+Inf\" bucket")
        counts = [c for _, c in buckets]  # type: ignore[union-attr]
        if any(b < a for a, b in itertools.pairwise(counts)):
            raise FormatError(f"{family.name}{rest}: buckets are not cumulative: {counts}")
        if "_count" not in s or "_sum" not in s:
            raise FormatError(f"{family.name}{rest}: _sum or _count missing")
        if counts[-1] != s["_count"]:
            raise FormatError(f"{family.name}{rest}: +Inf bucket {counts[-1]} != _count {s['_count']}")
