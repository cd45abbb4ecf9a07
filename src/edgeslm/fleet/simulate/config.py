"""What `edgeslm fleet simulate` runs: how many devices in how many processes, which faults, and how long each lasts."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeslm.config import Config
from edgeslm.errors import ConfigError

FAULTS = ("offline", "kill", "broker-restart")
BUNDLE_NAME = "sim-intent"
GROUP = "sim"
PROFILE = "sim-box"
DEVICE_FACTS = {"profile": PROFILE, "isa": ["avx2"], "memory_bytes": 512 << 20}
# paho-mqtt waits on its sockets with select(), which takes no file descriptor numbered past 1023 (FD_SETSIZE): a client
# whose socket lands there never connects, and paho says nothing (it takes the ValueError for a lost connection and
# retries). An agent holds 4 descriptors (its MQTT socket, paho's 2-socket wake-up pair, its state folder's lock) and a
# few more while it installs (the download's socket, the .part file, a file being checked). Measured (docs/fleet.md):
# 226 agents in one process held 915 at rest and 1,112 in a rollout, 32 sockets past 1023, and every client was back
# 15.8 s after a broker restart; 113 agents peaked at 545, none past 1023, back in 9.8 s. At 7 each, 120 stay near 900.
AGENTS_PER_PROCESS = 120


@dataclass(frozen=True)
class SimulateConfig(Config):
    devices: int = 100
    processes: int = 4  # agent processes for the healthy devices (at most AGENTS_PER_PROCESS each); one more per fault
    faults: list = field(default_factory=list)  # any of FAULTS
    fault_fraction: float = 0.05  # of the devices, for each of "offline" and "kill"
    offline_s: float = 20.0  # how long the offline devices stay away after release 2 starts
    kill_down_s: float = 2.0  # how long the killed agents stay dead
    broker_down_s: float = 3.0
    db: str | None = None  # a postgresql:// URL; default SQLite in the work folder
    bundle_kib: int = 64  # filler in the bundle standing in for weights: what each device downloads and hashes
    canary_fraction: float = 0.05
    waves: list = field(default_factory=lambda: [1.0])
    telemetry_interval_s: float = 60.0  # the agents' default: one telemetry message per device per minute
    reconnect_max_s: float = 10.0  # the agents' longest wait between reconnection attempts
    start_spread_s: float = 10.0  # the agents of a process start over this long (a fleet does not boot in one instant)
    timeout_s: float = 600.0  # per rollout
    workdir: str | None = None  # kept afterwards when given; default a temporary folder, removed
    device_dir: str | None = None  # the devices' state folders; default /dev/shm (tmpfs) when there is one

    def validate(self) -> None:
        if not 1 <= self.devices <= 20_000:
            raise ConfigError(f"SimulateConfig.devices: in [1, 20000], got {self.devices}")
        if not 1 <= self.processes <= 256:
            raise ConfigError(f"SimulateConfig.processes: in [1, 256], got {self.processes}")
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown or len(set(self.faults)) != len(self.faults):
            raise ConfigError(f"SimulateConfig.faults: each at most once, of {', '.join(FAULTS)}; got {self.faults}")
        if not 0 < self.fault_fraction <= 0.4:
            raise ConfigError(f"SimulateConfig.fault_fraction: in (0, 0.4], got {self.fault_fraction}")
        for name in ("offline_s", "kill_down_s", "broker_down_s"):
            if not 0 <= getattr(self, name) <= 3600:
                raise ConfigError(f"SimulateConfig.{name}: in [0, 3600] seconds")
        if not 0 <= self.bundle_kib <= 1 << 20:
            raise ConfigError("SimulateConfig.bundle_kib: in [0, 1048576]")
        if not 1 <= self.timeout_s <= 86400 or not 0 <= self.start_spread_s <= 600:
            raise ConfigError("SimulateConfig.timeout_s: in [1, 86400]; start_spread_s in [0, 600]")
        if not 0.05 <= self.telemetry_interval_s <= 86400 or not 1 <= self.reconnect_max_s <= 3600:
            raise ConfigError("SimulateConfig.telemetry_interval_s: in [0.05, 86400]; reconnect_max_s in [1, 3600]")
        healthy = self.devices - self.fault_devices() * len(self.device_faults())
        if -(-healthy // self.processes) > AGENTS_PER_PROCESS:
            raise ConfigError(f"SimulateConfig.processes: {self.processes} process(es) would run {-(-healthy // self.processes)} "
                              f"agents each, over the {AGENTS_PER_PROCESS} one process can (paho-mqtt's select() sees no "
                              f"file descriptor past 1023, and an agent holds 4 to 7); give processes="
                              f"{-(-healthy // AGENTS_PER_PROCESS)} or more")
        if self.device_faults() and self.fault_devices() > AGENTS_PER_PROCESS:
            raise ConfigError(f"SimulateConfig.fault_fraction: a fault's {self.fault_devices()} devices run in one process, "
                              f"over the {AGENTS_PER_PROCESS} one process can; give at most {AGENTS_PER_PROCESS / self.devices:.3g}")
        from edgeslm.fleet.rollout import RolloutConfig

        RolloutConfig(bundle=BUNDLE_NAME, release="1", group=GROUP, canary_fraction=self.canary_fraction,
                      waves=list(self.waves))  # its own checks of the waves

    def fault_devices(self) -> int:
        return max(1, round(self.fault_fraction * self.devices))

    def device_faults(self) -> list[str]:
        """The faults that take devices of their own (and a process for them), in the order they are taken."""
        return [f for f in ("offline", "kill") if f in self.faults]
