"""The dashboard in a real headless Chromium (Debian's package), driven over the Chrome DevTools Protocol on a pipe
(--remote-debugging-pipe: no driver, no extra package): the page refuses to show anything without the admin token,
shows devices, rollouts with their gates and the reason for a halt, and telemetry plots with it, and pauses a rollout
when an operator clicks Pause. The fleet behind it is real (tests/fleet/rollout_env.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest


def _load_env():
    spec = importlib.util.spec_from_file_location("rollout_env", Path(__file__).parent / "rollout_env.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollout_env"] = module
    spec.loader.exec_module(module)
    return module


env = _load_env()
LENIENT = {"min_requests": 20, "observe_s": 30.0, "max_p90_ratio": 100.0, "max_joules_ratio": 100.0}


class Chromium:
    """Headless Chromium with the DevTools Protocol on fds 3 (our commands) and 4 (its answers), NUL-separated JSON."""

    def __init__(self, profile_dir: Path):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            pytest.fail("chromium is not installed: run `make test` (it installs Debian's chromium package) or "
                        "apt-get install -y chromium", pytrace=False)
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds() -> None:  # in the child: the protocol's fds are 3 and 4, whatever numbers the pipes got here
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio", f"--user-data-dir={profile_dir}",
                "--remote-debugging-pipe", "about:blank"]
        # pass_fds keeps 3 and 4 open past close_fds, which runs after preexec_fn in the child
        self.proc = subprocess.Popen(args, preexec_fn=fds, pass_fds=(3, 4), close_fds=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._answers[message["id"]] = message
                        self._cond.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False, timeout: float = 30) -> Any:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"chromium did not answer {method} (exit code {self.proc.poll()})")
                self._cond.wait(min(left, 0.5))
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def goto(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=True)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                           session=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:80]}: {result['exceptionDetails'].get('text')} "
                                 f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(f"(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()")  # mid-navigation
            if value:
                return value
            if time.monotonic() > deadline:
                body = self.js("document.body ? document.body.innerText : ''")
                raise AssertionError(f"timed out waiting for {expression!r}; the page reads: {str(body)[:1500]}")
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element, as a person's would be."""
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView(); "
                      "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                      session=True)

    def type(self, selector: str, text: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text}, session=True)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except AssertionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture
def browser(tmp_path):
    chromium = Chromium(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


@pytest.fixture
def fleet(tmp_path):
    f = env.Fleet(tmp_path / "fleet", env.make_keys(tmp_path / "keys"))
    yield f
    f.close()


def test_the_dashboard_shows_the_fleet_and_pauses_a_rollout_on_a_click(fleet, browser, tmp_path):
    from edgeslm.fleet.rollout import RolloutConfig

    keys = fleet.keys
    devices = [fleet.add_device(env.ARM) for _ in range(2)]
    fleet.publish(env.make_bundle(tmp_path / "v1", keys.key, "v1"), "1")
    fleet.publish(env.make_bundle(tmp_path / "swapped", keys.key, "swapped", labels=env.SWAPPED), "2")
    fleet.publish(env.make_bundle(tmp_path / "v2", keys.key, "v2"), "3")
    fleet.start_traffic()

    def rollout(release: str, **kw: Any) -> int:
        config = RolloutConfig(bundle=env.NAME, release=release, group="all", **{**LENIENT, **kw})
        return fleet.rollouts.create(config, actor="test")["id"]

    fleet.wait_rollout(rollout("1", canary_fraction=1.0), ("completed",))
    fleet.wait_served(20)
    bad = rollout("2", canary_fraction=0.5)
    halt = fleet.wait_rollout(bad, ("halted",), until=lambda r: "rolling_back" not in r["counts"]
                              and "rollback_pending" not in r["counts"])["halt_reason"]
    # a rollout that stays open: its canary needs far more traffic than the test sends
    running = rollout("3", canary_fraction=0.5, min_requests=1_000_000, observe_s=3600.0)
    fleet.wait_rollout(running, ("running",), until=lambda r: r["waves"][0]["state"] == "installing")
    dashboard = fleet.url + "/dashboard"

    # without the token: a sign-in form, no data, and the API refuses the page's own requests
    browser.goto(dashboard)
    browser.wait("!document.getElementById('login').hidden")
    assert browser.js("document.getElementById('app').hidden") is True
    text = browser.js("document.body.innerText")
    assert all(d.id not in text for d in devices) and "Halted" not in text
    assert browser.js("fetch('/v1/devices').then(r => r.status)") == 401
    assert browser.js("fetch('/v1/rollouts', {headers: {Authorization: 'Bearer wrong-token'}}).then(r => r.status)") == 401
    browser.goto(dashboard + "#token=not-the-admin-token")
    browser.wait("document.getElementById('login-error').textContent.includes('refused')")
    assert browser.js("document.getElementById('app').hidden") is True

    # signing in with the admin token, typed into the form
    browser.type("#token", fleet.admin_token)
    browser.click("#login-form button[type=submit]")
    browser.wait("document.body.dataset.loaded === '1'")
    assert browser.js("document.getElementById('login').hidden") is True
    assert fleet.admin_token not in browser.js("document.documentElement.outerHTML")  # the field was cleared

    # devices and their versions
    rows = browser.js("[...document.querySelectorAll('#devices tbody tr')].map(r => r.innerText)")
    assert len(rows) == 2
    for device in devices:
        row = next(r for r in rows if device.id in r)
        assert "online" in row and f"{env.NAME} 1/generic" in row  # the v1 it serves (rollout 3 waits on its canary)
    # the halted rollout: its reason and its failed gate
    assert browser.js(f"document.querySelector('#rollout-{bad} .halt-reason').innerText") == "Halted: " + halt
    gate = browser.js(f"document.querySelector('#rollout-{bad} tr[data-gate=probe_accuracy]').innerText")
    assert "failed" in gate and "0.333" in gate
    # telemetry plots: one line per device
    assert browser.js("document.querySelectorAll('[data-plot=\"p90 latency\"] polyline').length") == 2
    assert browser.js("document.querySelectorAll('[data-plot=\"requests\"] polyline').length") == 2

    # an action: the operator pauses the open rollout with a click
    browser.click(f"#pause-{running}")
    env.wait_for(lambda: fleet.rollouts.get(running)["state"] == "paused", 10, "the rollout to be paused")
    browser.wait(f"document.querySelector('#rollout-{running}').dataset.state === 'paused'")
    assert browser.js(f"!!document.getElementById('resume-{running}')")
    events = fleet.api("GET", f"/v1/events?subject=rollout:{running}")[1]["events"]
    assert [(e["kind"], e["actor"], e["reason"]) for e in events if e["kind"] == "rollout.paused"] == \
        [("rollout.paused", "admin", "pause from the dashboard")]

    # a token in the link's fragment is taken into the tab and cleared from the address bar (never sent to a server)
    browser.js("sessionStorage.clear()")
    browser.goto(dashboard + "#token=" + fleet.admin_token)
    browser.wait("document.body.dataset.loaded === '1'")
    assert browser.js("location.hash") == ""


def test_the_dashboard_files_are_served_with_a_strict_policy_and_nothing_from_outside(fleet):
    import urllib.request

    for path in ("/dashboard", "/dashboard/app.js", "/dashboard/style.css"):
        with urllib.request.urlopen(fleet.url + path, timeout=10) as resp:
            body = resp.read().decode()
            csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        body = body.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace is a name, never fetched
        assert "http://" not in body and "https://" not in body and "//" + "cdn" not in body
    status, body = fleet.api("GET", "/v1/rollouts", token=None)
    assert status == 401 and "credentials" in body["error"]["message"]
