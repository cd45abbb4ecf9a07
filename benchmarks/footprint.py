"""Device footprint: what `pip install edgeslm[device]` adds to an empty venv, the serving process's
RSS, and the time from process start to the first answer.

    .venv/bin/python benchmarks/footprint.py --encoder runs/demo/intent-int8-dynamic --decoder runs/demo/smollm2
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def du_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return round(total / 2**20, 1)


def install_size(wheels: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        empty = du_mb(venv)
        # A regular (not editable) install, from the same wheel of llama-cpp-python `make` builds.
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "--find-links", str(wheels), f"{ROOT}[device]"],
                       check=True, stderr=subprocess.DEVNULL)
        full = du_mb(venv)
        site = next((venv / "lib").glob("python*/site-packages"))
        packages = sorted(((p.name, du_mb(p) if p.is_dir() else round(p.stat().st_size / 2**20, 1))
                           for p in site.iterdir() if not p.name.endswith((".dist-info", ".pth"))),
                          key=lambda x: -x[1])
        torch_free = not (site / "torch").exists() and not (site / "transformers").exists()
        return {"empty_venv_mb": empty, "installed_venv_mb": full, "added_mb": round(full - empty, 1),
                "largest": dict(packages[:10]), "no_torch_no_transformers": torch_free}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, path: str, body: dict, timeout: float = 60) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def serving(python: str, bundles: list[str], chat: bool) -> dict:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([python, "-m", "edgeslm.cli.main", "serve", *bundles, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = None
        while first is None:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: {proc.stderr.read()[-2000:]}")
            try:
                if post(port, "/v1/classify", {"text": "turn on the kitchen lights"}) == 200:
                    first = time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
        for _ in range(200):
            post(port, "/v1/classify", {"text": "what is the temperature in the bedroom"})
        out = {"bundles": bundles, "first_answer_s": round(first, 3)}
        if chat:
            t = time.perf_counter()
            status = post(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Say hello."}],
                                                          "max_tokens": 16})
            out["chat_status"], out["chat_s"] = status, round(time.perf_counter() - t, 3)
        out["rss_mb"], out["peak_rss_mb"] = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", required=True, help="an encoder bundle (the int8 intent model)")
    ap.add_argument("--decoder", help="a decoder bundle (SmolLM2) to serve beside the encoder")
    ap.add_argument("--python", default=str(ROOT / ".venv-device/bin/python"),
                    help="interpreter with only edgeslm[device] installed")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".wheels")
    ap.add_argument("--skip-install", action="store_true")
    args = ap.parse_args()
    result: dict = {"python": args.python}
    if not args.skip_install:
        result["install"] = install_size(args.wheels)
    result["encoder"] = serving(args.python, [args.encoder], chat=False)
    if args.decoder:
        result["encoder_and_decoder"] = serving(args.python, [args.encoder, args.decoder], chat=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
