"""Accuracy against latency and size for compressed variants, fp32 as the reference point."""

from __future__ import annotations

from pathlib import Path

from edgeslm.report.text import table


def plot_tradeoffs(rows: list[tuple[str, dict]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    fp32 = rows[0][1]
    for ax, key, label in ((ax1, "latency", "batch-1 p50 latency (ms)"), (ax2, "bytes", "file size (MB)")):
        fx = fp32["latency"]["batch1"]["fp32"]["p50_ms"] if key == "latency" else fp32["fp32"]["bytes"] / 1e6
        ax.scatter([fx], [fp32["fp32"]["test_accuracy"] * 100], marker="*", s=200, color="black", label="fp32")
        for name, r in rows:
            x = r["latency"]["batch1"][r["recipe"]]["p50_ms"] if key == "latency" else r["bytes"] / 1e6
            ax.scatter([x], [r["test"]["accuracy"] * 100], s=60)
            ax.annotate(name, (x, r["test"]["accuracy"] * 100), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    ax1.set_title("accuracy vs latency (each against fp32 in its own run)")
    ax2.set_title("accuracy vs size")
    ax1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def decoder_table(rows: list[tuple[str, dict]]) -> str:
    """GGUF quantizations: size and perplexity against the unquantized conversion, same text."""
    body = [[name, r["type"], f"{r['bytes_after'] / 1e6:.1f}", f"{r['size_ratio']:.1%}",
             f"{r['perplexity_before']:.2f}", f"{r['perplexity_after']:.2f}", f"{r['ppl_ratio']:.3f}"]
            for name, r in rows]
    return table(body, ["bundle", "type", "MB", "size vs f16", "ppl f16", "ppl", "ppl ratio"])


def compare_table(rows: list[tuple[str, dict]]) -> str:
    """Compressed encoders: accuracy kept, size and latency, each against fp32 and ORT int8 in its own run."""
    body = []
    for name, r in rows:
        b1, b32 = r["latency"]["batch1"], r["latency"]["batch32"]
        body.append([
            name, f"{r['test']['accuracy']:.4f}", f"{r['fp32']['test_accuracy']:.4f}", f"{r['accuracy_kept']:.1%}",
            f"{r['bytes'] / 1e6:.1f}", f"{r['size_ratio']:.1%}", f"{r['sparsity']:.0%}",
            f"{b1[r['recipe']]['p50_ms']:.2f}", f"{b1['fp32']['p50_ms']:.2f}", f"{b1['ort-dynamic-int8']['p50_ms']:.2f}",
            f"{r['latency_ratio']['batch1_vs_ort_dynamic_int8']:.2f}", f"{b32[r['recipe']]['p50_ms']:.1f}",
            f"{b32['fp32']['p50_ms']:.1f}",
        ])
    return table(body, ["bundle", "test acc", "fp32 acc", "kept", "MB", "size", "sparse", "b1 ms", "fp32 b1",
                        "ort-int8 b1", "vs ort-int8", "b32 ms", "fp32 b32"])
