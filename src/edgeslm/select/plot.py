"""The frontier as a figure: accuracy against measured p90 (marker area ~ size, colour ~ joules per
answer, the frontier joined, the budget's limits drawn), and predicted against measured p90."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_frontier(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in result["candidates"] if c["status"] == "measured"]
    front = set(result["frontier"])
    chosen = (result.get("chosen") or {}).get("name")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    p90 = [r["measured"]["p90_ms"] for r in rows]
    acc = [r["accuracy"]["val"] for r in rows]
    size = [max(10.0, r["measured"]["size_mb"] * 4) for r in rows]
    mj = [r["measured"]["joules"] * 1e3 for r in rows]
    sc = ax.scatter(p90, acc, s=size, c=mj, cmap="viridis", alpha=0.8, edgecolors="k")
    fig.colorbar(sc, ax=ax, label="mJ per answer")
    fr = sorted((r for r in rows if r["name"] in front), key=lambda r: r["measured"]["p90_ms"])
    ax.plot([r["measured"]["p90_ms"] for r in fr], [r["accuracy"]["val"] for r in fr], "k--", lw=1, label="Pareto frontier")
    for r in rows:
        ax.annotate(r["name"], (r["measured"]["p90_ms"], r["accuracy"]["val"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points", weight="bold" if r["name"] == chosen else "normal")
    limit = result["budget"]["costs"].get("p90_ms")
    if limit:
        ax.axvline(limit, color="r", lw=1, label=f"p90 budget {limit:g} ms")
    if result.get("accuracy_floor"):
        ax.axhline(result["accuracy_floor"], color="r", ls=":", lw=1, label=f"accuracy floor {result['accuracy_floor']:.4f}")
    if chosen:
        c = next(r for r in rows if r["name"] == chosen)
        ax.scatter([c["measured"]["p90_ms"]], [c["accuracy"]["val"]], marker="*", s=300, c="r", label=f"chosen: {chosen}")
    ax.set_xlabel("measured p90 ms, batch 1")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"profile {result['profile']['name']}: {result['budget']['text']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    pred = [r["predicted"]["p90_ms"] for r in rows]
    ax2.scatter(p90, pred, c="tab:blue")
    hi = max(p90 + pred) * 1.1 if rows else 1
    ax2.plot([0, hi], [0, hi], "k-", lw=1)
    ax2.fill_between([0, hi], [0, hi * 0.8], [0, hi * 1.2], color="grey", alpha=0.2, label="within 20%")
    for r, x, y in zip(rows, p90, pred, strict=True):
        ax2.annotate(r["name"], (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax2.set_xlabel("measured p90 ms")
    ax2.set_ylabel("predicted p90 ms (before compressing)")
    err = result.get("p90_prediction_error_median")
    ax2.set_title(f"cost model: median p90 error {err:.1%}" if err is not None else "cost model", fontsize=9)
    ax2.legend(fontsize=7)
    return _save(fig, path)


def plot_decoder_frontier(result: dict[str, Any], path: Path) -> Path:
    """A decoder's frontier: perplexity against measured tokens/s (marker area ~ file size), and predicted
    against measured ms per token and time to first token."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in result["candidates"] if c["status"] == "measured"]
    front, chosen = set(result["frontier"]), (result.get("chosen") or {}).get("name")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    tps = [r["measured"]["tok_s"] for r in rows]
    ppl = [r["quality"]["ppl"] for r in rows]
    ax.scatter(tps, ppl, s=[max(10.0, r["measured"]["size_mb"] * 2) for r in rows], c="tab:blue", alpha=0.7,
               edgecolors="k")
    fr = sorted((r for r in rows if r["name"] in front), key=lambda r: r["measured"]["tok_s"])
    ax.plot([r["measured"]["tok_s"] for r in fr], [r["quality"]["ppl"] for r in fr], "k--", lw=1, label="Pareto frontier")
    for r, x, y in zip(rows, tps, ppl, strict=True):
        ax.annotate(r["name"], (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points",
                    weight="bold" if r["name"] == chosen else "normal")
    floor = dict(result["budget"].get("floors") or {}).get("tok_s")
    if floor:
        ax.axvline(floor, color="r", lw=1, label=f"tok/s floor {floor:g}")
    if chosen:
        c = next(r for r in rows if r["name"] == chosen)
        ax.scatter([c["measured"]["tok_s"]], [c["quality"]["ppl"]], marker="*", s=300, c="r", label=f"chosen: {chosen}")
    ax.set_xlabel("measured tokens/s (batch 1)")
    ax.set_ylabel("perplexity on held-out text")
    ax.set_title(f"profile {result['profile']['name']}: {result['budget']['text']}", fontsize=9)
    ax.legend(fontsize=7)
    for key, marker in (("ms_per_token", "o"), ("ttft_ms", "s")):
        ax2.scatter([r["measured"][key] for r in rows], [r["predicted"][key] for r in rows], marker=marker, label=key)
    hi = max([r["measured"][k] for r in rows for k in ("ms_per_token", "ttft_ms")] + [1]) * 1.1
    ax2.plot([1, hi], [1, hi], "k-", lw=1)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("measured ms")
    ax2.set_ylabel("predicted ms (before quantizing)")
    err = result.get("per_token_prediction_error_median")
    ax2.set_title(f"cost model: median per-token error {err:.1%}" if err is not None else "cost model", fontsize=9)
    ax2.legend(fontsize=7)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
