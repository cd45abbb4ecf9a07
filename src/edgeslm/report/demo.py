"""The demo report: one table of scores per evaluation set and one figure (accuracy per set,
per-intent F1 on the hardest set), written next to the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(out: Path, bundle: dict[str, Any], results: dict[str, dict[str, Any]], command: str,
                 compressed: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Path]:
    out = Path(out)
    png = out / "report.png"
    _plot(png, results)
    rows = []
    for name, r in results.items():
        lat = r["latency"]
        rows.append(f"| {name} | {r['n']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {lat['p50_ms']:.2f} | {lat['p90_ms']:.2f} | {lat['p99_ms']:.2f} |")
    confusions = []
    for name, r in results.items():
        for c in r["confusions"][:3]:
            confusions.append(f"| {name} | {c['true']} | {c['predicted']} | {c['count']} |")
    export = bundle["provenance"]["export"]
    text = "\n".join([
        f"# edgeslm demo: {bundle['name']}",
        "",
        f"Model: {bundle['provenance']['base_model']} fine-tuned on `ha-intents` ({len(bundle['labels'])} Home Assistant intents),",
        f"exported to ONNX (opset {export['opset']}, max |Δlogit| vs PyTorch {export['max_abs_diff']:.1e} on {export['compared_on']} sentences),",
        "evaluated with the device runtime (ONNX Runtime + tokenizers, no torch), batch 1, one request at a time.",
        "",
        "| evaluation set | n | accuracy | macro-F1 | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "- `test`: sentences from grammar templates and slot values (names, areas, items) never used in training.",
        "- `test-noisy`: the same with fillers, politeness and typos added (`edgeslm data noisy`).",
        "- `home-commands`: commands written by hand by the edgeslm developers in their own words (evalsets/), never trained or tuned on.",
        "",
        "Most frequent confusions:",
        "",
        "| set | true | predicted | n |",
        "|---|---|---|---|",
        *confusions,
        "",
        "![accuracy per set and per-intent F1](report.png)",
        *(_compression_section(out, compressed) if compressed else []),
        "",
        f"Reproduce: `{command}`",
        "",
    ])
    md = out / "report.md"
    md.write_text(text, encoding="utf-8")
    return {"markdown": md, "plot": png}


def _plot(path: Path, results: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hardest = min(results, key=lambda k: results[k]["macro_f1"])
    per_label = results[hardest]["per_label"]
    names = sorted(per_label, key=lambda k: per_label[k]["f1"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 7), gridspec_kw={"width_ratios": [1, 2]})
    sets = list(results)
    acc = [results[s]["accuracy"] * 100 for s in sets]
    bars = ax1.bar(sets, acc, color="#4c72b0")
    ax1.bar_label(bars, fmt="%.1f")
    ax1.set_ylim(0, 105)
    ax1.set_ylabel("accuracy (%)")
    ax1.set_title("accuracy by evaluation set")
    ax1.tick_params(axis="x", rotation=20)
    ax2.barh([n.removeprefix("Hass") for n in names], [per_label[n]["f1"] for n in names], color="#55a868")
    ax2.set_xlim(0, 1.0)
    ax2.set_xlabel("F1")
    ax2.set_title(f"per-intent F1 on '{hardest}'")
    ax2.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _compression_section(out: Path, compressed: list[tuple[str, dict[str, Any]]]) -> list[str]:
    from edgeslm.report.compare import compare_table
    from edgeslm.report.compare import plot_tradeoffs

    plot_tradeoffs(compressed, out / "compression.png")
    return [
        "",
        "## Compressed variants",
        "",
        "Each row measured against fp32 and ONNX Runtime's plain `quantize_dynamic` in its own run, in alternating",
        "blocks with spinning off, batch 1 and batch 32 p50 (ms), on the test split (held-out templates and names).",
        "",
        "```",
        compare_table(compressed),
        "```",
        "",
        "![accuracy vs latency and size](compression.png)",
    ]
