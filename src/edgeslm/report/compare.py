"""Accuracy against latency and size for compressed variants, fp32 as the reference point."""

from __future__ import annotations

from pathlib import Path

from edgeslm.report.text import MISSING, dig, number, table


def _finite(*values: object) -> bool:
    return all(number(v, "g") != MISSING for v in values)


def plot_tradeoffs(rows: list[tuple[str, dict]], path: Path) -> Path:
    if not rows:
        raise ValueError("plot_tradeoffs: no compressed bundles to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    fp32 = rows[0][1]
    for ax, key, label in ((ax1, "latency", "batch-1 p50 latency (ms)"), (ax2, "bytes", "file size (MB)")):
        fx = dig(fp32, "latency", "batch1", "fp32", "p50_ms") if key == "latency" else dig(fp32, "fp32", "bytes")
        fy = dig(fp32, "fp32", "test_accuracy")
        if _finite(fx, fy):
            fx = fx if key == "latency" else fx / 1e6
            ax.scatter([fx], [fy * 100], marker="*", s=200, color="black", label="fp32")
        for name, r in rows:
            x = dig(r, "latency", "batch1", r.get("recipe", ""), "p50_ms") if key == "latency" else dig(r, "bytes")
            y = dig(r, "test", "accuracy")
            if not _finite(x, y):  # a report without this measurement: no point rather than a wrong one
                continue
            x = x if key == "latency" else x / 1e6
            ax.scatter([x], [y * 100], s=60)
            ax.annotate(name, (x, y * 100), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    ax1.set_title("accuracy vs latency (each against fp32 in its own run)")
    ax2.set_title("accuracy vs size")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def decoder_table(rows: list[tuple[str, dict]]) -> str:
    """GGUF quantizations: size and perplexity against the unquantized conversion, same text."""
    body = [[name, r.get("type", "n/a"), number(_mb(r.get("bytes_after")), ".1f"), number(r.get("size_ratio"), ".1%"),
             number(r.get("perplexity_before"), ".2f"), number(r.get("perplexity_after"), ".2f"),
             number(r.get("ppl_ratio"), ".3f")]
            for name, r in rows]
    return table(body, ["bundle", "type", "MB", "size vs f16", "ppl f16", "ppl", "ppl ratio"])


def compare_table(rows: list[tuple[str, dict]]) -> str:
    """Compressed encoders: accuracy kept, size and latency, each against fp32 and ORT int8 in its own run.
    A measurement a report lacks (an older format, a baseline that was not run) shows as n/a."""
    body = []
    for name, r in rows:
        recipe = r.get("recipe", "")
        body.append([
            name, number(dig(r, "test", "accuracy"), ".4f"), number(dig(r, "fp32", "test_accuracy"), ".4f"),
            number(r.get("accuracy_kept"), ".1%"), number(_mb(r.get("bytes")), ".1f"),
            number(r.get("size_ratio"), ".1%"), number(r.get("sparsity"), ".0%"),
            number(_p50(r, "batch1", recipe), ".2f"), number(_p50(r, "batch1", "fp32"), ".2f"),
            number(_p50(r, "batch1", "ort-dynamic-int8"), ".2f"),
            number(dig(r, "latency_ratio", "batch1_vs_ort_dynamic_int8"), ".2f"),
            number(_p50(r, "batch32", recipe), ".1f"), number(_p50(r, "batch32", "fp32"), ".1f"),
        ])
    return table(body, ["bundle", "test acc", "fp32 acc", "kept", "MB", "size", "sparse", "b1 ms", "fp32 b1",
                        "ort-int8 b1", "vs ort-int8", "b32 ms", "fp32 b32"])


def _p50(report: dict, batch: str, side: str) -> object:
    return dig(report, "latency", batch, side, "p50_ms")


def _mb(n: object) -> object:
    return n / 1e6 if _finite(n) else None  # type: ignore[operator]
