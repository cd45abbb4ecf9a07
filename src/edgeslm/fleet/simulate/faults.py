"""The faults of the second rollout (offline devices, a SIGKILLed process of agents, a broker restart), each timed
mid-rollout from what the devices' own folders show, and a record of what each did."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edgeslm.fleet.simulate.agents import active_sha, device_view

if TYPE_CHECKING:
    from edgeslm.fleet.simulate.run import Simulation


class FaultPlan:
    """The faults of one rollout, driven by the simulator's loop (`tick`), each recording what it did."""

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
        self.last_look = self.last_broker_look = 0.0
        if self.offline is not None:
            sim.faults["offline"] = {"devices": len(self.offline.devices), "off_before_rollout": True}
        if self.kill is not None:
            sim.faults["kill"] = {"devices": len(self.kill.devices)}
        if self.broker:
            sim.faults["broker-restart"] = {}

    def watching(self) -> bool:
        return self.kill is not None and self.killed_at is None

    def done(self) -> bool:
        """Every fault happened, and the clients the broker restart cut off are back (or the rollout's time is up)."""
        back = not self.broker or "reconnected_s" in self.sim.faults["broker-restart"]
        return back and all(x is not None for x, on in ((self.killed_at, self.kill), (self.offline_back, self.offline),
                                                        (self.broker_at, self.broker or None)) if on is not None)

    def tick(self, now: float) -> None:
        c, f = self.sim.config, self.sim.faults
        if self.kill is not None and self.killed_at is None:
            views = [device_view(d, self.sha) for d in self.kill.devices]
            # when a tenth of them are downloading (the main wave reached them); a small group at its first install
            busy = views.count("partial") + views.count("journaled")
            if views.count("active") == len(views):  # every one finished between two looks: nothing left to kill
                self.killed_at = now
                f["kill"].update({"missed": "every device of the group installed between two looks (20 ms apart)"})
            elif views.count("partial") >= max(1, len(views) // 10) or (busy and (len(views) < 20 or now - self.t0 > 30)):
                self.kill.kill()
                self.killed_at = now
                after = [device_view(d, self.sha) for d in self.kill.devices]  # what the kill left on each device
                f["kill"].update({"at_s": round(now - self.t0, 2), "signal": "SIGKILL",
                                  "states_at_kill": {s: after.count(s) for s in sorted(set(after))},
                                  "partial_bytes": sum((d / "downloads" / f"{self.sha}.part").stat().st_size
                                                       for d in self.kill.devices
                                                       if (d / "downloads" / f"{self.sha}.part").exists())})
        if self.killed_at is not None and self.kill.proc is None and now - self.killed_at >= c.kill_down_s:
            self.kill.start()
            f["kill"]["restarted_at_s"] = round(now - self.t0, 2)
        if self.offline is not None and self.offline_back is None and now - self.t0 >= c.offline_s:
            self.offline.start()
            self.offline_back = now
            f["offline"]["back_at_s"] = round(now - self.t0, 2)
        active = -1
        if self.broker and self.broker_at is None and now - self.last_broker_look >= 0.2:
            self.last_broker_look = now  # mid-wave: a quarter of the healthy devices on the new release
            active = sum(1 for d in self.sim.healthy if active_sha(d) == self.sha)
        if active >= max(1, len(self.sim.healthy) // 4):
            self.broker_at = now
            broker = self.sim.broker
            broker.stop()
            self.sim.monitor.broker_restarted()
            time.sleep(c.broker_down_s)
            broker.start()
            f["broker-restart"].update({"at_s": round(now - self.t0, 2), "down_s": c.broker_down_s,
                                        "healthy_active_before": active, "of": len(self.sim.healthy)})
            self.broker_back = time.monotonic()
        if self.broker_back is not None and "reconnected_s" not in f["broker-restart"]:
            running = sum(len(g.devices) for g in self.sim.groups if g.proc is not None) + 2  # + the control plane, monitor
            if self.sim.monitor.connected() >= running:
                f["broker-restart"]["reconnected_s"] = round(time.monotonic() - self.broker_back, 2)
        for kind, group in (("kill", self.kill), ("offline", self.offline)):
            if group is not None and "all_reached_at_s" not in f[kind] and now - self.last_look >= 0.2:
                self.last_look = now
                if all(active_sha(d) == self.sha for d in group.devices):
                    f[kind]["all_reached_at_s"] = round(now - self.t0, 2)

    def finish(self) -> None:
        f, sim = self.sim.faults, self.sim
        for kind, group in (("kill", self.kill), ("offline", self.offline)):
            if group is not None:
                got = sum(1 for d in group.devices if active_sha(d) == self.sha)
                f[kind]["reached_release"] = f"{got} of {len(group.devices)}"
        if self.broker and self.broker_at is not None:
            f["broker-restart"]["clients_connected_after"] = sim.monitor.connected()

