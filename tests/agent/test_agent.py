"""The agent end to end: a real Mosquitto, a local HTTP server in the control plane's place, real signed tiny
bundles. Installs swap atomically and keep the previous version; a bundle failing its probe set, a tampered
archive or a wrong signature leaves the active model serving; a killed agent resumes its download; a command
sent while the broker restarts still arrives; a full disk fails the install and nothing else."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from edgeslm.agent.agent import Agent
from edgeslm.agent.config import AgentConfig, Credentials
from edgeslm.agent.protocol import Command, Event, Install, Presence, Probe, ProbeItem, State, Telemetry, encode, parse, topic
from edgeslm.formats.signing import key_id as key_id_of
from edgeslm.formats.signing import load_public_key

from .conftest import Archive, fleet_broker

DEVICE = "dev-a"


def _credentials(broker, tmp_path: Path, device: str = DEVICE) -> Path:
    path = tmp_path / f"{device}-credentials.json"
    path.write_text(json.dumps({"device_id": device, "mqtt_username": device, "mqtt_password": broker.users[device],
                                "secret": f"device-secret-{device}-0123456789"}))
    path.chmod(0o600)
    return path


def _config(broker, keys, tmp_path: Path, state: Path | None = None, **kw) -> AgentConfig:
    values = dict(profile="this-machine", state_dir=state or tmp_path / "state", broker_host=broker.host,
                  broker_port=broker.port, credentials=_credentials(broker, tmp_path), trust=keys.trust,
                  telemetry_interval_s=0.3, reconnect_min_s=0.2, reconnect_max_s=1.0, download_timeout_s=5.0)
    values.update(kw)
    return AgentConfig(**values)


@pytest.fixture
def agent(broker, keys, tmp_path, observer):
    a = Agent(_config(broker, keys, tmp_path))
    a.start()
    _wait_online(observer)
    yield a
    a.stop()


def _wait_online(observer, device: str = DEVICE) -> None:
    observer.wait_for(lambda ms: any(t == topic(device, "presence") and parse(Presence, p).status == "online"
                                     for t, p, _ in ms))


_ids = iter(range(1, 1_000_000))


def install(observer, archive: Archive, server, min_accuracy: float = 0.9, probe: Probe | None = None,
            signers: list[str] | None = None, device: str = DEVICE, publish: bool = True) -> Command:
    command = Command(v=1, id=f"cmd-{next(_ids)}", action="install", issued_at=time.time(), rollout="r-1",
                      install=Install(sha256=archive.sha256, url=server.url(archive.sha256), size=archive.size,
                                      signers=signers or [], name="tiny",
                                      probe=probe or Probe(min_accuracy=min_accuracy, file="probe.jsonl")))
    if publish:
        observer.publish(topic(device, "cmd"), encode(command))
    return command


def events(observer, device: str = DEVICE) -> list[Event]:
    return [parse(Event, p) for t, p, _ in observer.messages if t == topic(device, "event")]


def wait_event(observer, command: Command, kinds=("install_activated", "install_failed", "rolled_back", "rollback_failed"),
               timeout: float = 20.0) -> Event:
    return observer.wait_for(lambda ms: next((e for e in events(observer) if e.command_id == command.id and e.kind in kinds),
                                             None), timeout)


def eventually(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def last_state(observer, device: str = DEVICE) -> State:
    return [parse(State, p) for t, p, _ in observer.messages if t == topic(device, "state")][-1]


def test_a_request_during_activation_is_served_by_the_new_bundle_not_refused(agent, observer, archive_server, archives):
    """The `active` link and the engine change together: a request arriving just after the link was renamed waits
    for the new engine instead of finding none (CI caught `agent.active` set while `classify` still said no bundle)."""
    got: list = []
    activate = agent.store.activate

    def slow_activate(sha):
        activate(sha)
        asker = threading.Thread(target=lambda: got.append(_try(lambda: agent.classify(["turn on the kitchen lights"]))))
        asker.start()
        asker.join(0.3)  # it answers or fails now (before the fix), or waits for the engine (after it)
        got.append(asker)

    agent.store.activate = slow_activate
    v1 = archives["v1"]
    archive_server.add(v1)
    assert wait_event(observer, install(observer, v1, archive_server)).kind == "install_activated"
    assert eventually(lambda: len(got) == 2)
    asker = next(g for g in got if isinstance(g, threading.Thread))
    asker.join(10)
    answer = next(g for g in got if not isinstance(g, threading.Thread))
    assert isinstance(answer, list) and answer[0]["label"] == "TurnOn", answer


def _try(call):
    try:
        return call()
    except Exception as exc:  # what the request would have answered
        return exc


def test_install_reports_inventory_events_and_telemetry(agent, observer, archive_server, archives, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    first = observer.wait_for(lambda ms: [parse(State, p) for t, p, retain in ms if t == topic(DEVICE, "state")])
    assert first[0].active is None and first[0].profile == "this-machine" and first[0].free_memory_mb > 0

    v1 = archives["v1"]
    archive_server.add(v1)
    command = install(observer, v1, archive_server)
    done = wait_event(observer, command)
    assert done.kind == "install_activated", done.reason
    assert done.sha256 == v1.sha256 == done.active and done.probe_accuracy == 1.0 and done.rollout == "r-1"
    assert [e.kind for e in events(observer) if e.command_id == command.id] == [
        "install_started", "install_verified", "install_activated"]
    assert archive_server.requests[0]["authorization"] == "Bearer device-secret-dev-a-0123456789"

    # the device folder: active points at the bundle, named by the archive's sha256; nothing else is left
    state_dir = tmp_path / "state"
    assert os.readlink(state_dir / "active") == f"bundles/{v1.sha256}"
    assert not (state_dir / "previous").exists()
    assert not list((state_dir / "downloads").iterdir()) and not list((state_dir / "staging").iterdir())
    assert eventually(lambda: not list((state_dir / "journal").iterdir()))  # done once the state is out
    state = observer.wait_for(lambda ms: (lambda s: s if s.active == v1.sha256 else None)(last_state(observer)))
    assert [b.sha256 for b in state.installed] == [v1.sha256] and state.installed[0].name == "tiny-v1"
    assert state.installing is None

    # served requests become one window's aggregates: counts, latency percentiles, tiers, energy, no text
    assert agent.classify(["turn on the kitchen lights"])[0]["label"] == "TurnOn"
    assert agent.classify(["what is the weather like", "lamp off"])[1]["label"] == "TurnOff"
    agent.record(0.250, "generative", escalated=True, joules=1.5)
    agent.record(0.010, "cache", error=True)
    tele = observer.wait_for(lambda ms: [parse(Telemetry, p) for t, p, _ in ms if t == topic(DEVICE, "telemetry")
                                         and parse(Telemetry, p).requests])[0]
    assert tele.requests == 5 and tele.errors == 1 and tele.escalations == 1 and tele.active == v1.sha256
    assert tele.tier_shares == {"cache": 0.2, "encoder": 0.6, "generative": 0.2}
    assert tele.latency_ms.p50_ms <= tele.latency_ms.p90_ms <= tele.latency_ms.p99_ms
    assert 200 < tele.latency_ms.p99_ms < 300  # the 250 ms request, within the histogram's 2%
    assert tele.probe_accuracy == 1.0 and tele.joules_per_answer > 0

    # nothing a device sends carries request text, and no secret shows up in messages or logs
    secrets = [agent.credentials.mqtt_password, agent.credentials.secret]
    for _, payload, _ in observer.messages:
        assert b"kitchen" not in payload and b"weather like" not in payload
        assert not any(s.encode() in payload for s in secrets)
    assert not any(s in caplog.text for s in secrets)
    assert not any(s in repr(agent.credentials) for s in secrets)


def test_swap_keeps_serving_and_rolls_back(agent, observer, archive_server, archives, tmp_path):
    v1, v2 = archives["v1"], archives["v2"]
    for a in (v1, v2):
        archive_server.add(a)
    assert wait_event(observer, install(observer, v1, archive_server)).kind == "install_activated"

    failures, answers, stop = [], [], threading.Event()

    def serve() -> None:  # requests keep coming during the install: none may fail, and none wait for the download
        while not stop.is_set():
            try:
                answers.append(agent.classify(["turn on the lights"])[0]["label"])
            except Exception as exc:  # noqa: BLE001 - the test collects any failure
                failures.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        done = wait_event(observer, install(observer, v2, archive_server))
    finally:
        stop.set()
        thread.join()
    assert done.kind == "install_activated" and not failures and answers and set(answers) == {"TurnOn"}
    state_dir = tmp_path / "state"
    assert os.readlink(state_dir / "active") == f"bundles/{v2.sha256}"
    assert os.readlink(state_dir / "previous") == f"bundles/{v1.sha256}"

    rollback = Command(v=1, id="rb-1", action="rollback", issued_at=time.time(), rollout="r-1", reason="p90 gate failed")
    observer.publish(topic(DEVICE, "cmd"), encode(rollback))
    back = wait_event(observer, rollback)
    assert back.kind == "rolled_back" and back.sha256 == v2.sha256 and back.active == v1.sha256
    assert back.reason == "p90 gate failed"
    assert os.readlink(state_dir / "active") == f"bundles/{v1.sha256}"
    assert os.readlink(state_dir / "previous") == f"bundles/{v2.sha256}"
    # a redelivered command (QoS 1 is at least once) is not acted on again
    observer.publish(topic(DEVICE, "cmd"), encode(rollback))
    report = Command(v=1, id="report-1", action="report", issued_at=time.time())
    observer.publish(topic(DEVICE, "cmd"), encode(report))
    observer.wait_for(lambda ms: sum(t == topic(DEVICE, "telemetry") for t, _, _ in ms) >= 1 and
                      Path(state_dir / "done.json").read_text().count("report-1"))
    assert [e.kind for e in events(observer) if e.command_id == "rb-1"] == ["rolled_back"]
    assert os.readlink(state_dir / "active") == f"bundles/{v1.sha256}"


def test_probe_failure_keeps_the_old_model(agent, observer, archive_server, archives, tmp_path):
    v1, bad = archives["v1"], archives["swapped"]
    for a in (v1, bad):
        archive_server.add(a)
    assert wait_event(observer, install(observer, v1, archive_server)).kind == "install_activated"
    done = wait_event(observer, install(observer, bad, archive_server, min_accuracy=0.9))
    assert done.kind == "install_failed" and done.active == v1.sha256
    assert "probe set accuracy 0.333" in done.reason and done.probe_accuracy == pytest.approx(1 / 3)
    assert [e.kind for e in events(observer) if e.sha256 == bad.sha256] == [
        "install_started", "install_verified", "install_failed"]
    assert os.readlink(tmp_path / "state" / "active") == f"bundles/{v1.sha256}"
    assert not (tmp_path / "state" / "bundles" / bad.sha256).exists()
    assert agent.classify(["turn on the lights"])[0]["label"] == "TurnOn"
    # the same bundle with a floor it passes, and probe items in the command instead of the bundle's file
    items = Probe(min_accuracy=0.3, items=[ProbeItem("weather please", "Weather"), ProbeItem("lights on", "TurnOn")])
    done = wait_event(observer, install(observer, bad, archive_server, probe=items))
    assert done.kind == "install_activated" and done.probe_accuracy == 0.5


def _escaping_archive(folder: Path, v1: Archive) -> Archive:
    """v1's files, plus one member named ../escaped: an archive that tries to write outside its folder."""
    path = folder / "escape.tar"
    with tarfile.open(path, "w") as tar:
        for f in sorted(v1.folder.iterdir()):
            tar.add(f, arcname=f.name)
        info = tarfile.TarInfo("../escaped")
        data = b"owned"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    data = path.read_bytes()
    return Archive(data, hashlib.sha256(data).hexdigest(), v1.folder)


def test_tampered_or_wrongly_signed_bundles_are_refused(agent, observer, archive_server, archives, keys, tmp_path):
    v1, v2 = archives["v1"], archives["v2"]
    archive_server.add(v1)
    assert wait_event(observer, install(observer, v1, archive_server)).kind == "install_activated"

    # the archive changed in transit or on the server: its sha256 no longer matches the command's
    tampered = bytearray(v2.data)
    tampered[len(tampered) // 2] ^= 0x01
    archive_server.archives[v2.sha256] = bytes(tampered)
    refused = {"tampered": wait_event(observer, install(observer, v2, archive_server))}
    # correct archives whose bundles are signed by an untrusted key, or not at all
    for name in ("stranger", "unsigned"):
        archive_server.add(archives[name])
        refused[name] = wait_event(observer, install(observer, archives[name], archive_server))
    # a trusted signature, but not by the key this rollout names
    archive_server.add(v2)
    other = "0" * 64
    refused["signers"] = wait_event(observer, install(observer, v2, archive_server, signers=[other]))
    escape = _escaping_archive(tmp_path, v1)
    archive_server.add(escape)
    refused["escape"] = wait_event(observer, install(observer, escape, archive_server))

    assert all(e.kind == "install_failed" and e.active == v1.sha256 for e in refused.values()), refused
    assert "sha256" in refused["tampered"].reason and "tampered" in refused["tampered"].reason
    assert "not trusted" in refused["stranger"].reason
    assert "not signed" in refused["unsigned"].reason
    assert "does not accept" in refused["signers"].reason
    assert "../escaped" in refused["escape"].reason
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "state" / "escaped").exists()
    assert os.readlink(tmp_path / "state" / "active") == f"bundles/{v1.sha256}"
    assert sorted(p.name for p in (tmp_path / "state" / "bundles").iterdir()) == sorted([v1.sha256, f"{v1.sha256}.json"])
    # the right signer named explicitly is accepted
    trusted = key_id_of(load_public_key(keys.trust))
    assert wait_event(observer, install(observer, v2, archive_server, signers=[trusted])).kind == "install_activated"


def test_broker_restart_mid_rollout_still_delivers_the_command(broker, keys, tmp_path, archive_server, archives):
    observer = None
    a = Agent(_config(broker, keys, tmp_path, reconnect_min_s=1.0, reconnect_max_s=2.0))
    a.start()
    try:
        assert a.connected.wait(10)
        v1 = archives["v1"]
        archive_server.add(v1)
        broker.restart()  # SIGTERM: mosquitto saves the agent's persistent session, then comes back
        publisher = fleet_broker.client(broker, fleet_broker.ADMIN)
        try:
            assert not a.connected.is_set()  # the command goes out while the agent is still away
            command = install(None, v1, archive_server, publish=False)
            publisher.publish(topic(DEVICE, "cmd"), encode(command), qos=1).wait_for_publish(5)
        finally:
            publisher.disconnect()
            publisher.loop_stop()
        deadline = time.monotonic() + 20
        while a.active != v1.sha256 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert a.active == v1.sha256
        assert a.connected.is_set()
        observer = fleet_broker.client(broker, fleet_broker.ADMIN)  # the retained state says so too
        got = []
        observer.on_message = lambda c, u, m: got.append(parse(State, m.payload))
        observer.subscribe(topic(DEVICE, "state"), qos=1)
        deadline = time.monotonic() + 5
        while not (got and got[-1].active == v1.sha256) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got and got[-1].active == v1.sha256
    finally:
        if observer is not None:
            observer.disconnect()
            observer.loop_stop()
        a.stop()


# The agent is device side: torch and transformers are refused on import in its process, which runs in the
# torch-free device venv when one is given (make test gives EDGESLM_DEVICE_PYTHON).
AGENT_MAIN = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ImportError('the agent must not import ' + name)
sys.meta_path.insert(0, Block())
from edgeslm.cli.fleet_agent import agent
agent()
"""


def _agent_process(broker, keys, tmp_path: Path) -> subprocess.Popen:
    python = os.environ.get("EDGESLM_DEVICE_PYTHON") or sys.executable
    return subprocess.Popen(
        [python, "-c", AGENT_MAIN, "--profile", "this-machine", "--state", str(tmp_path / "state"),
         "--broker", f"{broker.host}:{broker.port}", "--credentials", str(_credentials(broker, tmp_path)),
         "--trust", str(keys.trust), "--telemetry-interval", "0.5", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_agent_killed_mid_download_resumes(broker, keys, tmp_path, observer, archive_server, archives):
    v1 = archives["v1"]
    archive_server.add(v1)
    half = v1.size // 2
    archive_server.stall_after = half
    proc = _agent_process(broker, keys, tmp_path)
    try:
        assert json.loads(proc.stdout.readline())["event"] == "started"
        _wait_online(observer)
        install(observer, v1, archive_server)
        part = tmp_path / "state" / "downloads" / f"{v1.sha256}.part"
        deadline = time.monotonic() + 20
        while not (part.exists() and part.stat().st_size >= half) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert part.stat().st_size == half
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the broker noticed: the last will says the device is offline
    observer.wait_for(lambda ms: any(t == topic(DEVICE, "presence") and parse(Presence, p).status == "offline"
                                     for t, p, _ in ms))
    archive_server.stall_after = None
    archive_server.release.set()
    proc = _agent_process(broker, keys, tmp_path)
    try:
        assert json.loads(proc.stdout.readline())["event"] == "started"
        done = observer.wait_for(lambda ms: next((e for e in events(observer) if e.kind in ("install_activated",
                                                                                          "install_failed")), None))
        assert done.kind == "install_activated", done.reason
        assert archive_server.requests[0]["range"] == "bytes=0-"
        assert archive_server.requests[-1]["range"] == f"bytes={half}-"  # only the missing half came again
        assert len(archive_server.requests) == 2
        assert os.readlink(tmp_path / "state" / "active") == f"bundles/{v1.sha256}"
        proc.send_signal(signal.SIGTERM)  # a clean stop says offline itself, then exits 0
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"event": "stopped", "active": v1.sha256}
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MiB tmpfs: a device whose disk another writer can fill. Needs root (CI and `make test` run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mounting a tmpfs for the disk-full test failed (it needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_download_fails_and_keeps_serving(broker, keys, tmp_path, observer, archive_server, archives,
                                                         small_disk):
    a = Agent(_config(broker, keys, tmp_path, state=small_disk / "state"))
    a.start()
    try:
        _wait_online(observer)
        v1, v2 = archives["v1"], archives["v2"]
        for x in (v1, v2):
            archive_server.add(x)
        assert wait_event(observer, install(observer, v1, archive_server)).kind == "install_activated"

        filler = small_disk / "filler"

        def fill_disk() -> None:  # another writer takes every free byte just as the download starts
            with filler.open("wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * (1 << 20))
                        fh.flush()
                except OSError:
                    pass
            small = small_disk / "filler-tail"
            try:
                with small.open("wb") as fh:
                    while True:
                        fh.write(b"\0" * 512)
                        fh.flush()
            except OSError:
                pass

        archive_server.before_body = fill_disk
        done = wait_event(observer, install(observer, v2, archive_server))
        assert done.kind == "install_failed" and "disk full" in done.reason, done.reason
        assert done.active == v1.sha256 and a.active == v1.sha256
        assert not (small_disk / "state" / "downloads" / f"{v2.sha256}.part").exists()  # its space given back
        assert a.classify(["turn off the lamp"])[0]["label"] == "TurnOff"
        archive_server.before_body = None
        filler.unlink()
        (small_disk / "filler-tail").unlink()
        assert wait_event(observer, install(observer, v2, archive_server)).kind == "install_activated"
    finally:
        a.stop()


def test_a_second_agent_on_the_same_state_folder_is_refused(agent, broker, keys, tmp_path):
    from edgeslm.errors import ConfigError

    other = Agent(_config(broker, keys, tmp_path))
    with pytest.raises(ConfigError, match="another agent"):
        other.start()


def test_credentials_file_must_be_private(broker, tmp_path):
    from edgeslm.errors import ConfigError

    path = _credentials(broker, tmp_path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Credentials.load(path)
    path.chmod(0o600)
    assert Credentials.load(path).device_id == DEVICE


def test_a_broken_active_bundle_at_start_falls_back_to_the_previous(broker, keys, tmp_path, observer, archive_server,
                                                                   archives):
    v1, v2 = archives["v1"], archives["v2"]
    for x in (v1, v2):
        archive_server.add(x)
    a = Agent(_config(broker, keys, tmp_path))
    a.start()
    try:
        _wait_online(observer)
        for x in (v1, v2):
            assert wait_event(observer, install(observer, x, archive_server)).kind == "install_activated"
    finally:
        a.stop()
    model = tmp_path / "state" / "bundles" / v2.sha256 / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10])  # the active bundle's model damaged while the agent was down
    a = Agent(_config(broker, keys, tmp_path))
    a.start()
    try:
        back = observer.wait_for(lambda ms: next((e for e in events(observer) if e.kind == "rolled_back"), None))
        assert back.sha256 == v2.sha256 and back.active == v1.sha256 and back.command_id is None
        assert "fails its check at start" in back.reason and "model.onnx" in back.reason
        assert a.active == v1.sha256 and a.classify(["lights on"])[0]["label"] == "TurnOn"
    finally:
        a.stop()


def test_a_broker_port_must_be_ascii_digits():
    from edgeslm.agent.config import parse_broker
    from edgeslm.errors import ConfigError

    assert parse_broker("localhost:1883") == ("localhost", 1883)
    for bad in ("localhost:\u00b2", "localhost:\u0663", "localhost:", "localhost:70000"):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            parse_broker(bad)
