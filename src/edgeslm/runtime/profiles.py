"""Device profiles: what a device may spend (memory, threads, queue) and what it costs (watts).

Built-ins live in `profiles/*.yaml`; `this-machine` is measured at load time; users add their own
as a YAML path or in a directory named by EDGESLM_PROFILES (several joined by os.pathsep).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.formats import strict_yaml
from edgeslm.runtime.cpu import cpu_flags

log = logging.getLogger(__name__)

ENV_DIRS = "EDGESLM_PROFILES"
THIS_MACHINE = "this-machine"

# ISA names a profile may claim, and the /proc/cpuinfo flags that prove each on this machine.
ISA_FLAGS: dict[str, frozenset[str]] = {
    "avx2": frozenset({"avx2"}),
    "avx512": frozenset({"avx512f"}),
    "avx512_vnni": frozenset({"avx512_vnni"}),
    "avx_vnni": frozenset({"avx_vnni"}),
    "neon": frozenset({"asimd", "neon"}),
    "dotprod": frozenset({"asimddp"}),
}

# `this-machine` cannot measure its own power draw: a small x86 box's figures, flagged estimated.
GENERIC_WATTS_IDLE = 10.0
GENERIC_WATTS_BUSY = 30.0


@dataclass(frozen=True)
class BatteryConfig(Config):
    path: Path  # a file holding the charge in percent, 0-100 (sysfs: .../BAT0/capacity)
    low_threshold_percent: float = 20.0
    status_path: Path | None = None  # sysfs .../BAT0/status: on external power -> not degraded

    def validate(self) -> None:
        if not 0 <= self.low_threshold_percent <= 100:
            raise ConfigError("BatteryConfig.low_threshold_percent: must be in [0, 100]")


@dataclass(frozen=True)
class ThermalConfig(Config):
    path: Path  # a file holding millidegrees C (sysfs: /sys/class/thermal/thermal_zone0/temp)
    hot_threshold_c: float = 80.0

    def validate(self) -> None:
        if not 20 <= self.hot_threshold_c <= 150:
            raise ConfigError("ThermalConfig.hot_threshold_c: must be in [20, 150] degrees C")


_NESTED: dict[str, type[Config]] = {"battery": BatteryConfig, "thermal": ThermalConfig}


@dataclass(frozen=True)
class DeviceProfile(Config):
    name: str
    memory_budget_mb: int  # MiB the governor may keep resident in loaded models
    cores: int  # logical CPUs
    threads: int  # each engine's thread budget (see governor.py for why not split)
    watts_idle: float  # whole device, at the input; energy.py interpolates by CPU utilisation
    watts_busy: float
    description: str = ""
    isa: tuple[str, ...] = ()
    battery: BatteryConfig | None = None
    thermal: ThermalConfig | None = None
    queue_limit: int = 32  # requests in flight plus queued before the governor says 503
    max_batch: int = 8
    power_estimated: bool = False  # watts are a generic guess, not this device's figures

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("DeviceProfile.name: must be a non-empty string")
        if self.memory_budget_mb < 1:
            raise ConfigError("DeviceProfile.memory_budget_mb: must be >= 1")
        if self.cores < 1:
            raise ConfigError("DeviceProfile.cores: must be >= 1")
        if not 1 <= self.threads <= self.cores:
            raise ConfigError(f"DeviceProfile.threads: must be in [1, cores={self.cores}], got {self.threads}")
        if self.watts_idle < 0 or self.watts_busy < self.watts_idle:
            raise ConfigError("DeviceProfile.watts_busy: need 0 <= watts_idle <= watts_busy")
        unknown = [i for i in self.isa if not isinstance(i, str) or i not in ISA_FLAGS]
        if unknown:
            raise ConfigError(f"DeviceProfile.isa: unknown {unknown}; known: {', '.join(ISA_FLAGS)}")
        if self.queue_limit < 1 or self.max_batch < 1:
            raise ConfigError("DeviceProfile.queue_limit and max_batch: must be >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceProfile:
        if not isinstance(data, dict):
            raise ConfigError(f"DeviceProfile: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ConfigError(f"DeviceProfile: missing field(s) {', '.join(missing)}")
        if isinstance(data.get("isa"), list):
            data["isa"] = tuple(data["isa"])
        for key, sub in _NESTED.items():
            if isinstance(data.get(key), dict):
                try:
                    data[key] = sub.from_dict(data[key])
                except (ConfigError, TypeError) as exc:  # TypeError: a required sub-field is missing
                    raise ConfigError(f"DeviceProfile.{key}: {exc}") from None
        return super().from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["isa"] = list(self.isa)
        for key in _NESTED:
            if out[key] is not None:
                out[key] = {k: v for k, v in out[key].to_dict().items() if k != "version"}
        return out


def machine_isa() -> tuple[str, ...]:
    flags = cpu_flags()
    return tuple(name for name, proof in ISA_FLAGS.items() if proof & flags)


def isa_summary() -> dict[str, object]:
    """What benchmark reports say about this CPU, from the same proofs as machine_isa()."""
    isa = set(machine_isa())
    return {"machine": platform.machine(), "avx2": "avx2" in isa, "avx512": "avx512" in isa,
            "vnni": bool(isa & {"avx512_vnni", "avx_vnni"}), "neon": "neon" in isa, "dotprod": "dotprod" in isa}


def meminfo_mb() -> dict[str, int]:
    """/proc/meminfo in MiB; empty where there is none (not Linux)."""
    try:
        text = Path("/proc/meminfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) // 1024  # the kernel writes kB (KiB)
    return out


def this_machine() -> DeviceProfile:
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    mem = meminfo_mb()
    available = mem.get("MemAvailable", mem.get("MemTotal"))
    note = ""
    if available is None:
        available = 2048
        note = "; memory unknown (no /proc/meminfo): 2 GiB assumed"
        log.warning("this-machine: no /proc/meminfo, assuming 2 GiB available")
    return DeviceProfile(
        name=THIS_MACHINE,
        description=f"measured at load time; power figures are a generic estimate{note}",
        memory_budget_mb=max(1, available // 2),  # half of what is free now: other processes share it
        cores=cores,
        threads=max(1, min(usable, cores)),  # a taskset or cgroup may allow fewer CPUs than exist
        isa=machine_isa(),
        watts_idle=GENERIC_WATTS_IDLE,
        watts_busy=GENERIC_WATTS_BUSY,
        queue_limit=256,  # requests are small; 256 waiting keeps 200 concurrent clients out of 503s
        max_batch=32,
        power_estimated=True,
    )


def _builtin_dir() -> Any:
    return resources.files("edgeslm.runtime") / "profiles"


def list_builtin_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def _user_dirs() -> list[Path]:
    raw = os.environ.get(ENV_DIRS, "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


def _user_file(name: str) -> Path | None:
    for folder in _user_dirs():
        for suffix in (".yaml", ".yml"):
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def list_profiles() -> dict[str, str]:
    """Name -> where it comes from ("built-in" or a file). User profiles shadow built-ins."""
    out = {name: "built-in" for name in list_builtin_names()}
    out[THIS_MACHINE] = "built-in (measured)"
    for folder in reversed(_user_dirs()):  # earlier directories win, like PATH
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.suffix in (".yaml", ".yml"):
                    out[p.stem] = str(p)
    return dict(sorted(out.items()))


def parse_profile(text: str, where: str, default_name: str | None = None) -> DeviceProfile:
    try:
        data = strict_yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from None
    if isinstance(data, dict) and default_name and "name" not in data:
        data["name"] = default_name
    try:
        return DeviceProfile.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A YAML path, a user profile in EDGESLM_PROFILES, or a built-in, in that order."""
    path = Path(name_or_path)
    if path.is_file():
        return parse_profile(path.read_text(encoding="utf-8"), str(path), default_name=path.stem)
    name = str(name_or_path)
    user = _user_file(name)
    if user is not None:
        if name in list_builtin_names():
            log.info("profile %s: the user profile %s shadows the built-in", name, user)
        return parse_profile(user.read_text(encoding="utf-8"), str(user), default_name=name)
    if name == THIS_MACHINE:
        return this_machine()
    if name in list_builtin_names():
        text = (_builtin_dir() / f"{name}.yaml").read_text(encoding="utf-8")
        return parse_profile(text, f"built-in profile {name}")
    if path.suffix in (".yaml", ".yml") or os.sep in name:
        raise ConfigError(f"{name}: no such profile file")
    raise ConfigError(f"{name!r}: unknown device profile; known: {', '.join(list_profiles())} (or give a YAML path)")


def check_fits(profile: DeviceProfile) -> list[str]:
    """Where `profile` promises more than this machine has. Warnings, not errors: serving an rpi4
    profile on a laptop to rehearse its budgets is a legitimate use."""
    have = set(machine_isa())
    notes = [f"ISA {isa} is not available on this machine" for isa in profile.isa if isa not in have]
    total = meminfo_mb().get("MemTotal")
    if total is not None and profile.memory_budget_mb > total:
        notes.append(f"memory_budget_mb {profile.memory_budget_mb} exceeds this machine's {total} MiB")
    cores = os.cpu_count() or 1
    if profile.threads > cores:
        notes.append(f"threads {profile.threads} exceeds this machine's {cores} CPUs")
    for note in notes:
        log.warning("profile %s: %s", profile.name, note)
    return notes
