"""HTTP stacks side by side: one keep-alive client on loopback against each server variant, in rounds
that rotate the order, each variant in its own process on the same bundle and interpreter.

  old        the hand-written HTTP/1.1 server, from a git worktree of REF (--old-ref)
  httptools  today's `edgeslm serve`: uvicorn's httptools protocol with our limits, Starlette routes
  h11        the same app under uvicorn's pure-Python h11 protocol (the alternative we did not pick)

    .venv/bin/python benchmarks/http_stack.py runs/demo/intent-int8-static --python .venv-device/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
H11 = """
import sys, uvicorn
from edgeslm.runtime.server.limits import Limits
from edgeslm.runtime.server.serve import ServeConfig, build_app
app = build_app(ServeConfig(bundles=[sys.argv[1]], port=0))
uvicorn.Server(uvicorn.Config(app.asgi(Limits()), host="127.0.0.1", port=int(sys.argv[2]), http="h11",
               loop="asyncio", lifespan="off", ws="none", access_log=False, server_header=False,
               log_config=None)).run()
"""
TEXTS = [b"turn on the kitchen lights", b"what is the temperature in the bedroom", b"set a timer for ten minutes",
         b"pause the music in the living room please", b"lock the front door"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(variant: str, python: str, bundle: str, old_src: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ)
    if variant == "h11":
        cmd = [python, "-c", H11, bundle, str(port)]
    else:
        cmd = [python, "-m", "edgeslm.cli.main", "serve", bundle, "--port", str(port)]
        if variant == "old":
            env["PYTHONPATH"] = str(old_src)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"{variant} exited: {proc.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{variant} did not answer /healthz")


def one_client(port: int, seconds: float, warmup: int = 300) -> dict:
    """Sequential keep-alive POST /v1/classify; reads each answer by its Content-Length."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    lat: list[float] = []
    i = 0
    until = None
    while True:
        body = b'{"text": "%s"}' % TEXTS[i % len(TEXTS)]
        t = time.perf_counter()
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        status = f.readline()
        length = 0
        while (line := f.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        f.read(length)
        elapsed = time.perf_counter() - t
        if b" 200 " not in status:
            raise SystemExit(f"unexpected answer {status!r}")
        i += 1
        if i == warmup:
            until = time.monotonic() + seconds
        elif until is not None:
            lat.append(elapsed)
            if time.monotonic() >= until:
                break
    sock.close()
    lat.sort()
    return {"n": len(lat), "p50_ms": round(lat[len(lat) // 2] * 1e3, 4), "p99_ms": round(lat[int(len(lat) * 0.99)] * 1e3, 4),
            "rps": round(len(lat) / sum(lat), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the servers")
    ap.add_argument("--old-ref", default="c61f728", help="the commit whose hand-written server is the baseline")
    ap.add_argument("--variants", nargs="+", default=["old", "httptools", "h11"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        old_src = Path(tmp) / "old"
        if "old" in args.variants:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old_src), args.old_ref],
                           check=True)
        try:
            for r in range(args.rounds):
                order = args.variants[r % len(args.variants):] + args.variants[:r % len(args.variants)]
                for variant in order:
                    proc, port = start(variant, args.python, args.bundle, old_src / "src")
                    try:
                        runs[variant].append(one_client(port, args.seconds))
                    finally:
                        proc.terminate()
                        proc.wait(10)
                    print(variant, runs[variant][-1], file=sys.stderr)
        finally:
            if "old" in args.variants:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_src)], check=False)
    summary = {v: {"p50_ms_median": statistics.median(x["p50_ms"] for x in rs),
                   "p99_ms_median": statistics.median(x["p99_ms"] for x in rs),
                   "rps_median": statistics.median(x["rps"] for x in rs), "rounds": rs} for v, rs in runs.items()}
    result = {"bundle": args.bundle, "python": args.python, "seconds_per_round": args.seconds, "variants": summary,
              "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    if "old" in runs:
        result["ratio_p50_vs_old"] = {
            v: {"median_of_rounds": round(statistics.median(a["p50_ms"] / b["p50_ms"] for a, b in zip(rs, runs["old"],
                                                                                                       strict=True)), 3),
                "definition": f"{v} p50 / old p50 in the same round (above 1: slower than the old server)"}
            for v, rs in runs.items() if v != "old"}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
