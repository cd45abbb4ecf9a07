"""benchmarks/time_series.py's figures as a picture: per data set, test accuracy against batch-1 p50 latency on
one core, ours (fp32 and int8) beside MiniRocket, the marker's area ~ the file's size, with the issue's goals
drawn (MiniRocket's accuracy as the floor, 1 ms as the latency ceiling).

    .venv/bin/python benchmarks/time_series_plot.py runs/bench/time_series.json --out docs/time-series.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

LATENCY_GOAL_MS = 1.0


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = result["sets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 5.6), squeeze=False)
    for ax, (name, got) in zip(axes[0], sets.items(), strict=True):
        rows = got["rows"]
        for label, row in rows.items():
            ours = label != "MiniRocket"
            ax.scatter([row["p50_ms"]], [row["accuracy"]], s=max(20.0, row["bytes"] / 4000), alpha=0.75,
                       color=("tab:blue" if "int8" in label else "tab:cyan") if ours else "tab:orange", edgecolors="k",
                       label=f"{label}: {row['accuracy']:.4f}, {row['bytes'] / 1000:,.0f} kB, {row['p50_ms']:.2f} ms")
        floor = rows.get("MiniRocket", {}).get("accuracy")
        if floor is not None:
            ax.axhline(floor, color="tab:orange", ls=":", lw=1, label=f"goal: accuracy >= MiniRocket's {floor:.4f}")
        ax.axvline(LATENCY_GOAL_MS, color="r", lw=1, label=f"goal: p50 <= {LATENCY_GOAL_MS:g} ms, one core")
        accs = [r["accuracy"] for r in rows.values()]
        ax.set_ylim(min(accs) - 0.01, max(accs) + 0.01)
        ax.set_xlim(0, max(LATENCY_GOAL_MS, *(r["p50_ms"] for r in rows.values())) * 1.15)
        ax.set_title(f"{name} (TEST n={got['test_n']:,})")
        ax.set_xlabel("batch-1 p50 ms, one core")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
        ax.grid(alpha=0.3)
    cpu = result.get("cpu", {}).get("model", "this machine")
    fig.suptitle(f"ours vs MiniRocket, {cpu}, {result.get('when', '')} (marker area ~ file size)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result", type=Path, help="benchmarks/time_series.py --out JSON")
    ap.add_argument("--out", type=Path, default=Path("docs/time-series.png"))
    args = ap.parse_args()
    try:
        result = json.loads(args.result.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{args.result}: not a time_series.py result ({exc})") from None
    print(plot(result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
