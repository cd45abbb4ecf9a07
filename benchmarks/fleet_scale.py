"""A fleet of 1,000 simulated devices on this machine (edgeslm fleet simulate): the real control plane, a real Mosquitto
and real agents in a few processes; release 1 to every device, then release 2 with every fault injected (a share of
devices offline, agents SIGKILLed mid-download, the broker restarted). Writes the report as JSON and checks it
against the issue's goals: a rollout reaches every healthy device within 120 s, and the control plane averages under
one core over it.

    flock /tmp/edgeslm-cpu.lock .venv/bin/python benchmarks/fleet_scale.py --out runs/bench/fleet_scale.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from edgeslm.fleet.simulate import FAULTS, SimulateConfig, simulate

GOAL_SECONDS = 120.0
GOAL_CORES = 1.0


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return platform.processor()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} cores, {isa}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=8,
                        help="agent processes for the healthy devices (8: 113 agents each; at most 120 fit one process)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated; '' for none")
    parser.add_argument("--db", help="postgresql:// URL (default SQLite)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/fleet_scale.json"))
    args = parser.parse_args()
    config = SimulateConfig(devices=args.devices, processes=args.processes,
                            faults=[f for f in args.faults.split(",") if f], db=args.db)
    started = time.time()
    report = simulate(config)
    first = report["phases"]["rollout_release_1"]
    second = report["phases"]["rollout_release_2"]
    goals = {
        "healthy_reached_within_120s": {
            "release_1": first["healthy_reached_seconds"], "release_2_with_faults": second["healthy_reached_seconds"],
            "met": all(x is not None and x <= GOAL_SECONDS for x in (first["healthy_reached_seconds"],
                                                                    second["healthy_reached_seconds"]))},
        "controlplane_under_one_core": {
            "release_1": first["controlplane_avg_cores"], "release_2_with_faults": second["controlplane_avg_cores"],
            "met": max(first["controlplane_avg_cores"], second["controlplane_avg_cores"]) < GOAL_CORES},
        "no_device_without_working_model": {"count": report["devices_without_working_model"],
                                            "met": report["devices_without_working_model"] == 0},
    }
    out = {"benchmark": "fleet_scale", "command": " ".join(["benchmarks/fleet_scale.py", *sys.argv[1:]]), "cpu": cpu_name(),
           "python": platform.python_version(), "config": config.to_dict(), "goals": goals,
           "wall_seconds": round(time.time() - started, 1), "report": report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"goals": goals, "out": str(args.out)}, indent=1))
    return 0 if all(g["met"] for g in goals.values()) else 1


if __name__ == "__main__":  # the simulator starts processes with spawn: they import this file without running it
    sys.exit(main())
