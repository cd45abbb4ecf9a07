"""Accuracy against latency and size for compressed variants, fp32 as the reference point."""

from __future__ import annotations

from pathlib import Path


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
