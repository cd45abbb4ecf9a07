"""The demo report: one table of scores per evaluation set and one figure (accuracy per set,
per-intent F1 on the hardest set), written next to the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslm.report.text import MISSING, dig, number


def write_report(out: Path, bundle: dict[str, Any], results: dict[str, dict[str, Any]], command: str,
                 compressed: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Path]:
    if not results:
        raise ValueError("write_report: no evaluation results to report; evaluate at least one set first")
    out = Path(out)
    png = out / "report.png"
    _plot(png, results)
    rows = []
    for name, r in results.items():  # an empty set has no latency percentiles: n/a, not a KeyError
        cells = [number(r.get("accuracy"), ".4f"), number(r.get("macro_f1"), ".4f"),
                 *(number(dig(r, "latency", p), ".2f") for p in ("p50_ms", "p90_ms", "p99_ms"))]
        rows.append(f"| {name} | {r.get('n', 'n/a')} | " + " | ".join(cells) + " |")
    confusions = []
    for name, r in results.items():
        for c in r.get("confusions", [])[:3]:
            confusions.append(f"| {name} | {c['true']} | {c['predicted']} | {c['count']} |")
    export = bundle["provenance"]["export"]
    text = "\n".join([
        f"# edgeslm demo: {bundle['name']}",
        "",
        f"Model: {bundle['provenance']['base_model']} fine-tuned on `ha-intents` ({len(bundle['labels'])} Home Assistant intents),",
        f"exported to ONNX (opset {export['opset']}, max |Δlogit| vs PyTorch {export['max_abs_diff']:.1e} "
        f"on {export['compared_on']} sentences),",
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

    # The hardest set is the one with the lowest macro-F1 that was measured: NaN compares false with
    # everything, so min() would pick whichever came first.
    scored = [k for k in results if number(results[k].get("macro_f1"), "g") != MISSING] or list(results)
    hardest = min(scored, key=lambda k: results[k].get("macro_f1", 0.0))
    per_label = results[hardest].get("per_label", {})
    names = sorted(per_label, key=lambda k: per_label[k]["f1"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 7), gridspec_kw={"width_ratios": [1, 2]})
    sets = list(results)
    acc = [results[s].get("accuracy") for s in sets]
    measured = [number(a, "g") != MISSING for a in acc]  # an unmeasured set: an empty bar labelled n/a
    bars = ax1.bar(sets, [a * 100 if ok else 0.0 for a, ok in zip(acc, measured, strict=True)], color="#4c72b0")
    ax1.bar_label(bars, labels=[f"{a * 100:.1f}" if ok else MISSING for a, ok in zip(acc, measured, strict=True)])
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
    from edgeslm.report.compare import compare_table, plot_tradeoffs

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
