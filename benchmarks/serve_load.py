"""Reliability under load: `edgeslm serve` in its own process, N keep-alive clients on loopback for D
seconds, a share of them sending malformed requests. Reports status counts, latency, throughput and
the server's RSS over time; exits 1 on any 5xx or dropped connection.

    .venv/bin/python benchmarks/serve_load.py runs/demo/intent-int8-dynamic --clients 200 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

GOOD = [b'{"text": "turn on the kitchen lights"}', b'{"text": "what is the temperature in the bedroom"}',
        b'{"text": "set a timer for ten minutes"}', b'{"texts": ["open the garage", "lock the front door"]}',
        b'{"text": "pause the music in the living room please"}']
BAD = [b'{"text": ', b'{"text": "\xff\xfe lights"}', b'{"text": ""}', b'[1, 2, 3]', b'{"text": "' + b"a" * 3000 + b'"}',
       b'{"texts": []}', b'{"unknown": 1}', b"\x00\x01\x02"]


def start_server(python: str, bundles: list[str], extra: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [python, "-m", "edgeslm.cli.main", "serve", *bundles, "--port", "0", "--json", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the server did not start: {' '.join(cmd)}")
    return proc, json.loads(line)["url"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def client(host: str, port: int, until: float, bad_share: float, rng: random.Random, stats: dict) -> None:
    reader = writer = None
    while time.monotonic() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            body = rng.choice(BAD) if rng.random() < bad_share else rng.choice(GOOD)
            head = (f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            t = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            await reader.readexactly(int(headers.get("content-length", "0")))
            stats["latency"].append(time.perf_counter() - t)
            code = int(status_line.split()[1])
            stats["codes"][code] += 1
            if headers.get("connection") == "close":
                writer.close()
                writer = None
        except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError) as exc:
            stats["dropped"][type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def load(url: str, clients: int, duration: float, bad_share: float, pid: int, seed: int) -> dict:
    host, port = url.removeprefix("http://").split(":")
    stats = {"latency": [], "codes": Counter(), "dropped": Counter()}
    rss = []
    until = time.monotonic() + duration
    rngs = [random.Random(seed * 1000 + i) for i in range(clients)]
    tasks = [asyncio.create_task(client(host, int(port), until, bad_share, rngs[i], stats)) for i in range(clients)]
    started = time.perf_counter()
    while time.monotonic() < until:
        rss.append(round(rss_mb(pid), 1))
        await asyncio.sleep(1.0)
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    lat = sorted(stats["latency"])
    pct = lambda p: round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000, 2) if lat else None  # noqa: E731
    return {"clients": clients, "duration_s": round(wall, 1), "requests": len(lat),
            "throughput_rps": round(len(lat) / wall, 1), "status": dict(sorted(stats["codes"].items())),
            "server_errors": sum(n for c, n in stats["codes"].items() if c >= 500),
            "dropped_connections": dict(stats["dropped"]),
            "latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99)},
            "rss_mb": {"first": rss[0] if rss else None, "max": max(rss, default=None), "last": rss[-1] if rss else None,
                       "median": statistics.median(rss) if rss else None}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--bad-share", type=float, default=0.05, help="share of malformed requests")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the server")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the JSON result here too")
    args = ap.parse_args()
    proc, url = start_server(args.python, args.bundles, [])
    try:
        result = asyncio.run(load(url, args.clients, args.duration, args.bad_share, proc.pid, args.seed))
        result["server_alive_after"] = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
    result.update({"bundles": args.bundles, "python": args.python, "bad_share": args.bad_share,
                   "command": " ".join([os.path.basename(sys.executable), *sys.argv])})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    ok = result["server_errors"] == 0 and not result["dropped_connections"] and result["server_alive_after"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
