"""benchmarks/time_series_plot.py draws benchmarks/time_series.py's JSON, as a user runs it; a file that is not
such a result is refused with its name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _row(accuracy: float, size: int, p50: float) -> dict:
    return {"accuracy": accuracy, "bytes": size, "p50_ms": p50, "p90_ms": p50 * 1.1, "uJ": p50 * 2e4}


def test_the_plot_is_drawn_from_the_benchmarks_json(tmp_path):
    result = {"cpu": {"model": "test CPU"}, "when": "2026-12-05 00:00 UTC", "sets": {
        "forda": {"test_n": 1320, "rows": {"ts-transformer int8": _row(0.9485, 592142, 0.9),
                                           "MiniRocket": _row(0.9492, 337884, 1.5)}},
        "ecg5000": {"test_n": 4500, "rows": {"ts-transformer int8": _row(0.9398, 825986, 0.59),
                                             "MiniRocket": _row(0.9444, 492519, 1.06)}}}}
    src, out = tmp_path / "ts.json", tmp_path / "ts.png"
    src.write_text(json.dumps(result))
    done = subprocess.run([sys.executable, "benchmarks/time_series_plot.py", str(src), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    src.write_text("{not json")
    bad = subprocess.run([sys.executable, "benchmarks/time_series_plot.py", str(src), "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "not a time_series.py result" in bad.stderr
