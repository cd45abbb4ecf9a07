"""An occupancy-learning thermostat on real office readings (river's Occupancy set, six days in February
2015): heating energy and comfort violations of a fixed schedule, always on, the learned policy and an
oracle, side by side on one simulated room and one assumed outdoor temperature; and a plot.

    .venv/bin/python benchmarks/occupancy_thermostat.py --plot runs/bench/occupancy_thermostat.png

Also printed: how occupancy was derived (data/occupancy.py), the room's time constant fitted to the
office's own evening cool-downs (the sanity check of runtime/room.py's default), and the same
comparison for other slot sizes, prior weights, schedules and a slower room.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from dataclasses import asdict, replace
from datetime import datetime, time, timedelta
from pathlib import Path

import numpy as np

from edgeslm.data.occupancy import LOOKAHEAD, Occupancy, Readings, derive_occupancy, load_occupancy
from edgeslm.evaluate.thermostat import Run, SimConfig, compare
from edgeslm.runtime.room import fit_relaxation
from edgeslm.runtime.thermostat import Schedule

ROOT = Path(__file__).resolve().parents[1]


def night_fits(readings: Readings, occ: Occupancy) -> list[dict]:
    """tau fitted to each night's cool-down: 18:00-07:00, every reading dark and empty."""
    fits, day = [], readings.times[0].date()
    while day <= readings.times[-1].date():
        start = datetime.combine(day, time(18))
        idx = [i for i, t in enumerate(readings.times) if start <= t < start + timedelta(hours=13)]
        day += timedelta(days=1)
        if len(idx) < 24 or occ.occupied[idx].any() or (readings.light_lux[idx] >= occ.light_threshold_lux).any():
            continue
        hours = np.array([(readings.times[i] - readings.times[idx[0]]).total_seconds() / 3600 for i in idx])
        tau, asymptote, rms = fit_relaxation(hours, readings.temperature_c[idx])
        fits.append({"night_from": readings.times[idx[0]].strftime("%a %Y-%m-%d %H:%M"), "tau_h": round(tau, 2),
                     "asymptote_c": round(asymptote, 2), "rms_c": round(rms, 3)})
    return fits


def table(runs: dict[str, Run]) -> dict:
    out = {name: run.summary() for name, run in runs.items()}
    fixed, always = runs["fixed schedule"].energy_kwh, runs["always on"].energy_kwh
    for name, run in runs.items():
        out[name]["energy_vs_fixed"] = round(run.energy_kwh / fixed, 4)
        out[name]["saved_vs_always_on"] = round(1 - run.energy_kwh / always, 4)
    return out


def plot(path: Path, readings: Readings, occ: Occupancy, runs: dict[str, Run], config: SimConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(13, 9), sharex=True, gridspec_kw={"height_ratios": [1, 2, 1.2]})
    times = readings.times
    for ax in (ax1, ax2, ax3):  # occupied intervals shaded on every panel
        for i in np.flatnonzero(occ.occupied[:-1]):
            ax.axvspan(times[i], times[i + 1], color="#ffd27f", alpha=0.35, lw=0)
    ax1.plot(times, readings.light_lux, color="#b8860b", lw=1, label="light (lux)")
    ax1.axhline(occ.light_threshold_lux, color="#b8860b", ls=":", lw=1)
    ax1.set_ylabel("light, lux")
    co2 = ax1.twinx()
    co2.plot(times, readings.co2_ppm, color="#555", lw=1, label="CO2 (ppm)")
    co2.set_ylabel("CO2, ppm")
    ax1.set_title(f"River Occupancy readings; shaded: derived occupied ({occ.share:.1%} of readings)")
    colors = {"fixed schedule": "#1f77b4", "always on": "#d62728", "learned": "#2ca02c", "oracle": "#9467bd"}
    tc = config.thermostat
    oracle = runs["oracle"]
    for name, run in runs.items():
        ax2.plot(run.times, run.room_c, lw=1.1, color=colors.get(name), label=name)
        label = f"{name}: {run.energy_kwh:.1f} kWh, {run.violation_minutes:.0f} cold min"
        if name == "always on":  # 20x the others' excess: only its total, or the rest would be a flat line
            ax3.plot([], [], color=colors[name], label=label)
            continue
        excess = np.cumsum((run.power_w - oracle.power_w) * run.seconds) / 3.6e6
        ax3.plot(run.times, excess, lw=1.3, color=colors.get(name), label=label)
    ax2.plot(times, readings.temperature_c, color="#999", lw=1, ls="--", label="measured office (own heating)")
    ax2.plot(runs["oracle"].times, [config.outdoor.at(t) for t in runs["oracle"].times], color="#17becf", lw=0.8,
             ls=":", label="outdoor (assumed)")
    ax2.axhline(tc.comfort_c - tc.tolerance_k, color="k", lw=0.8, ls="-.", label="comfort - tolerance")
    ax2.set_ylabel("room, °C")
    ax2.legend(loc="lower left", ncol=3, fontsize=8)
    ax3.set_ylabel("kWh above oracle")
    ax3.legend(loc="upper left", fontsize=8)
    from matplotlib.dates import DateFormatter

    ax3.xaxis.set_major_formatter(DateFormatter("%a %d %b"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, help="the Occupancy CSV (default: the one inside the river package)")
    ap.add_argument("--plot", type=Path, default=ROOT / "runs/bench/occupancy_thermostat.png")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    readings = load_occupancy(args.csv)
    occ = derive_occupancy(readings)
    config = SimConfig()
    start_c = float(readings.temperature_c[0])
    runs = compare(readings.times, occ.occupied, config, start_c, occ.known_at)
    fits = night_fits(readings, occ)

    # Each variant changes one thing (the schedule is both the fixed policy's and the learner's prior).
    slow = replace(config.room, time_constant_h=8.0)
    variants = {"hour slots": {"thermostat": replace(config.thermostat, slot_minutes=60)},
                "prior worth a whole day": {"thermostat": replace(config.thermostat, prior_days=1.0)},
                "slow room, tau 8 h": {"room": slow}}
    for start, end in ((8, 18), (9, 17)):
        schedule = Schedule(start_hour=start, end_hour=end)
        variants[f"schedule {start:02d}-{end}"] = {"schedule": schedule, "thermostat": replace(config.thermostat, prior=schedule)}
    variants["schedule 09-17, slow room"] = {**variants["schedule 09-17"], "room": slow}
    sensitivity = {}
    for label, change in variants.items():
        r = compare(readings.times, occ.occupied, replace(config, **change), start_c, occ.known_at)
        sensitivity[label] = {name: f"{run.energy_kwh:.2f} kWh, {run.violation_minutes:.0f} cold min" for name, run in r.items()}

    lit = readings.light_lux >= occ.light_threshold_lux
    result = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "cpu": cpu_name(),
        "data": {"source": readings.source, "readings": len(readings), "first": readings.times[0].isoformat(" "),
                 "last": readings.times[-1].isoformat(" "), "occupied_readings": int(occ.occupied.sum()),
                 "occupied_share": round(occ.share, 4), "light_threshold_lux": round(occ.light_threshold_lux, 1),
                 "co2_baseline_ppm": round(occ.co2_baseline_ppm, 1), "lit_but_unconfirmed": int((lit & ~occ.occupied).sum()),
                 "labels_settled_late": int((occ.known_at > np.arange(len(readings))).sum()), "lookahead_readings": LOOKAHEAD},
        "room": {**asdict(config.room), "capacity_kj_per_k": round(config.room.capacity_j_per_k / 1000, 1)},
        "night_time_constant_fits": fits,
        "median_fitted_tau_h": round(statistics.median(f["tau_h"] for f in fits), 2) if fits else None,
        "outdoor_assumed": asdict(config.outdoor),
        "thermostat": asdict(config.thermostat),
        "fixed_schedule": asdict(config.schedule),
        "results": table(runs),
        "sensitivity": sensitivity,
        "plot": str(args.plot),
    }
    plot(args.plot, readings, occ, runs, config)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
