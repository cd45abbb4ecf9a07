"""The faults of the second rollout (offline devices, a SIGKILLed process of agents, a broker restart), each timed
mid-rollout from what the devices' own folders show, and a record of what each did."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from edgeslm.fleet.simulate.agents import active_sha, device_view

if TYPE_CHECKING:
    from edgeslm.fleet.simulate.run import Simulation


class FaultPlan:
    """The faults of one rollout, watched and injected on a thread of their own (`start`, `finish`), so that the
    simulator's calls to a busy control plane never delay a look: on a loaded machine, a look that came a few seconds
    late found the kill group already installed, or every healthy device past the point of the broker restart."""

    def __init__(self, sim: Simulation, sha: str, t0: float):
        self.sim, self.sha, self.t0 = sim, sha, t0
        c = sim.config
        self.kill = sim.fault_groups.get("kill")
        self.offline = sim.fault_groups.get("offline")
        self.broker = "broker-restart" in c.faults
        self.killed_at: float | None = None
        self.offline_back: float | None = None
        self.broker_at: float | None = None
        self.broker_back: float | None = None
        self.last_look = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restart: threading.Thread | None = None
        self._error: BaseException | None = None
        if self.offline is not None:
            sim.faults["offline"] = {"devices": len(self.offline.devices), "off_before_rollout": True}
        if self.kill is not None:
            sim.faults["kill"] = {"devices": len(self.kill.devices)}
        if self.broker:
            sim.faults["broker-restart"] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="edgeslm-sim-faults", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            while not self._stop.is_set():
                self.tick(time.monotonic())
                self._stop.wait(0.02 if self.watching() else 0.2)
        except BaseException as exc:  # raised again by finish(), in the simulator's thread
            self._error = exc

    def watching(self) -> bool:
        """A fault waits for a moment of the wave that lasts little: look every 20 ms, not every 200."""
        return (self.kill is not None and self.killed_at is None) or (self.broker and self.broker_at is None)

    def done(self, completed: bool = False) -> bool:
        """Every fault happened, and the clients the broker restart cut off are back; with `completed` (the rollout
        completed: every device's own folder shows the release), the watcher has also seen each group reach it."""
        if self._error is not None:
            return True
        f = self.sim.faults
        back = not self.broker or "reconnected_s" in f["broker-restart"]
        if completed and any(g is not None and "all_reached_at_s" not in f[k] for k, g in (("kill", self.kill),
                                                                                            ("offline", self.offline))):
            return False
        return back and all(x is not None for x, on in ((self.killed_at, self.kill), (self.offline_back, self.offline),
                                                        (self.broker_back, self.broker or None)) if on is not None)

    def tick(self, now: float) -> None:
        c, f = self.sim.config, self.sim.faults
        if self.kill is not None and self.killed_at is None:
            self._look_to_kill(now)
        if self.killed_at is not None and self.kill.proc is None and now - self.killed_at >= c.kill_down_s:
            self.kill.start()
            f["kill"]["restarted_at_s"] = round(now - self.t0, 2)
        if self.offline is not None and self.offline_back is None and now - self.t0 >= c.offline_s:
            self.offline.start()
            self.offline_back = now
            f["offline"]["back_at_s"] = round(now - self.t0, 2)
        if self.broker and self.broker_at is None:
            # mid-wave: a quarter of the healthy devices on the new release, looked for every 20 ms (a 2026 Zen 4
            # core took a 30-device fleet's 24 healthy ones from under a quarter to all in one 200 ms look, so the
            # restart came after the rollout it was meant to cut into)
            active = sum(1 for d in self.sim.healthy if active_sha(d) == self.sha)
            if active >= max(1, len(self.sim.healthy) // 4):
                self.broker_at = now
                f["broker-restart"].update({"at_s": round(now - self.t0, 2), "down_s": c.broker_down_s,
                                            "healthy_active_before": active, "of": len(self.sim.healthy)})
                # stopped, down and started on a thread of its own: the kill fault is watched meanwhile
                self._restart = threading.Thread(target=self._restart_broker, name="edgeslm-sim-broker", daemon=True)
                self._restart.start()
        if self.broker_back is not None and "reconnected_s" not in f["broker-restart"]:
            running = sum(len(g.devices) for g in self.sim.groups if g.proc is not None) + 2  # + the control plane, monitor
            if self.sim.monitor.connected() >= running:
                f["broker-restart"]["reconnected_s"] = round(time.monotonic() - self.broker_back, 2)
        if now - self.last_look >= 0.2:
            self.last_look = now  # (one look for both groups: each had to wait for the other's before)
            for kind, group in (("kill", self.kill), ("offline", self.offline)):
                if group is not None and "all_reached_at_s" not in f[kind]:
                    if all(active_sha(d) == self.sha for d in group.devices):
                        f[kind]["all_reached_at_s"] = round(now - self.t0, 2)

    def _look_to_kill(self, now: float) -> None:
        """SIGKILL the kill group's process while its devices have the install in hand: when a tenth of them are
        downloading (the main wave reached them), or a small group at its first install. The process is stopped
        (SIGSTOP) before the second look, so what that look sees is exactly what the kill leaves."""
        f = self.sim.faults
        assert self.kill is not None
        views = [device_view(d, self.sha) for d in self.kill.devices]
        busy = views.count("partial") + views.count("journaled")
        if views.count("active") == len(views):  # every one finished between two looks: nothing left to kill
            self.killed_at = now
            f["kill"].update({"missed": "every device of the group installed between two looks (20 ms apart)"})
            return
        if not (views.count("partial") >= max(1, len(views) // 10) or (busy and (len(views) < 20 or now - self.t0 > 30))):
            return
        self.kill.freeze()
        frozen = [device_view(d, self.sha) for d in self.kill.devices]
        if not {"partial", "journaled"} & set(frozen):  # they finished between the two looks: carry on watching
            self.kill.thaw()
            return
        self.kill.kill()
        self.killed_at = now
        f["kill"].update({"at_s": round(now - self.t0, 2), "signal": "SIGKILL",
                          "states_at_kill": {s: frozen.count(s) for s in sorted(set(frozen))},
                          "partial_bytes": sum((d / "downloads" / f"{self.sha}.part").stat().st_size
                                               for d in self.kill.devices
                                               if (d / "downloads" / f"{self.sha}.part").exists())})

    def _restart_broker(self) -> None:
        broker = self.sim.broker
        try:
            broker.stop()
            self.sim.monitor.broker_restarted()
            time.sleep(self.sim.config.broker_down_s)
            broker.start()
        except BaseException as exc:
            self._error = exc
            return
        self.broker_back = time.monotonic()

    def finish(self) -> None:
        """Stop watching (a restart under way completes first), raise what the watcher hit, and record the outcome."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._restart is not None:  # (read after the watcher ended: its last look may have started one)
            self._restart.join()
        if self._error is not None:
            raise self._error
        f, sim = self.sim.faults, self.sim
        for kind, group in (("kill", self.kill), ("offline", self.offline)):
            if group is not None:
                got = sum(1 for d in group.devices if active_sha(d) == self.sha)
                f[kind]["reached_release"] = f"{got} of {len(group.devices)}"
        if self.broker and self.broker_at is not None:
            f["broker-restart"]["clients_connected_after"] = sim.monitor.connected()
