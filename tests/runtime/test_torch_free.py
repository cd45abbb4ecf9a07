"""The device side must run where torch and transformers are not installed."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

BLOCK = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'transformers'):
                raise ImportError('blocked for this test: ' + name)
            return None
    sys.meta_path.insert(0, Block())
""")


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], check=False, capture_output=True, text=True, timeout=300)


def test_device_modules_import_without_torch():
    r = run_blocked(
        "import edgeslm.runtime.engines.onnx, edgeslm.evaluate.runner, edgeslm.formats.reader, "
        "edgeslm.formats.gguf, edgeslm.models.registry, edgeslm.cli.main, edgeslm.runtime.server.serve, "
        "edgeslm.runtime.engines.llama, edgeslm.bench.run, edgeslm.bench.encoder, edgeslm.bench.decoder\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\nprint('ok')"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


@pytest.mark.model
def test_eval_json_without_torch(session_bundle, trained_run):
    data = trained_run / "data" / "test.jsonl"
    code = (
        "import sys\nfrom edgeslm.cli.main import cli\n"
        f"sys.argv = ['edgeslm', 'eval', {str(session_bundle)!r}, '--data', {str(data)!r}, '--json']\n"
        "try:\n    cli()\nfinally:\n    assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = run_blocked(code)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 300
    assert 0 <= out["accuracy"] <= 1 and 0 <= out["macro_f1"] <= 1
    assert out["latency"]["p50_ms"] > 0 and out["latency"]["p99_ms"] >= out["latency"]["p50_ms"]
    # the device runtime reproduces what export measured on the same split
    from edgeslm.formats.reader import open_bundle

    assert out["accuracy"] == pytest.approx(open_bundle(session_bundle).manifest.evaluation["test"]["accuracy"], abs=0.005)


def test_eval_in_a_venv_that_has_no_torch(tiny_bundle, tmp_path):
    python = os.environ.get("EDGESLM_DEVICE_PYTHON")
    if not python:
        pytest.skip("set EDGESLM_DEVICE_PYTHON to a venv with only edgeslm[device] (make test does)")
    probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           check=False, capture_output=True, text=True)
    assert probe.stdout.strip() == "True", "the device venv must not have torch"
    data = tmp_path / "test.jsonl"
    data.write_text('{"text": "turn on the lamp", "label": "TurnOn"}\n{"text": "lights off", "label": "TurnOff"}\n')
    r = subprocess.run([python, "-m", "edgeslm.cli.main", "eval", str(tiny_bundle), "--data", str(data), "--json"],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 2 and json.loads(r.stdout)["accuracy"] == 1.0


def test_serve_in_a_venv_that_has_no_torch(tiny_bundle):
    python = os.environ.get("EDGESLM_DEVICE_PYTHON")
    if not python:
        pytest.skip("set EDGESLM_DEVICE_PYTHON to a venv with only edgeslm[device] (make test does)")
    import http.client
    import signal

    proc = subprocess.Popen([python, "-m", "edgeslm.cli.main", "serve", str(tiny_bundle), "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = json.loads(proc.stdout.readline())["url"]
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/v1/classify", json.dumps({"text": "turn off the hallway light"}))
        answer = json.loads(conn.getresponse().read())
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert answer["model"] == "tiny-encoder" and answer["label"] == "TurnOff"
    from prometheus_client.parser import text_string_to_metric_families

    requests = next(f for f in text_string_to_metric_families(metrics) if f.name == "edgeslm_requests")
    assert [(s.labels, s.value) for s in requests.samples] == [({"route": "/v1/classify", "code": "200"}, 1.0)]
    assert code == 0, proc.stderr.read()
