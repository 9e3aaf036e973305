"""host (infrastructure, P4.3.1): CPU, load, memory, each mount's disk, named processes."""

from __future__ import annotations

import os
from typing import Literal

import psutil
from pydantic import Field

from checks.base import CheckSpec, Probe, ProbeParams, threshold
from checks.result import Metric, Result, Status, worst

# Pseudo file systems say nothing about whether a backup or a WAL segment still fits.
_SKIP_FSTYPES = {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "nsfs", "iso9660"}


class HostParams(ProbeParams):
    mode: Literal["local"] = "local"
    cpu_warning: float = Field(85, ge=0, le=100)
    cpu_critical: float = Field(95, ge=0, le=100)
    load_warning: float = Field(2.0, gt=0, description="1-minute load per core")
    load_critical: float = Field(4.0, gt=0)
    memory_warning: float = Field(90, ge=0, le=100)
    memory_critical: float = Field(97, ge=0, le=100)
    disk_warning: float = Field(85, ge=0, le=100)
    disk_critical: float = Field(95, ge=0, le=100)
    mounts: list[str] | None = None  # None: every real mount
    processes: list[str] = []  # names that must be running


class HostProbe(Probe):
    kind = "host"
    Params = HostParams

    def run(self, check: CheckSpec) -> Result:
        p: HostParams = check.params
        metrics: dict[str, Metric] = {}
        findings: list[tuple[Status, str]] = []

        cpu = psutil.cpu_percent(interval=0.2)
        metrics["cpu_percent"] = cpu
        findings.append((threshold(cpu, p.cpu_warning, p.cpu_critical), f"CPU {cpu:.0f}%"))

        cores = os.cpu_count() or 1
        load1 = os.getloadavg()[0] / cores
        metrics["load1_per_core"] = round(load1, 2)
        findings.append((threshold(load1, p.load_warning, p.load_critical),
                         f"load {load1:.2f}/core"))

        mem = psutil.virtual_memory().percent
        metrics["memory_percent"] = mem
        findings.append((threshold(mem, p.memory_warning, p.memory_critical), f"memory {mem:.0f}%"))

        for mount, status, text, used in self._disks(p):
            metrics[f"disk_percent:{mount}"] = used
            findings.append((status, text))

        if p.processes:
            running = _process_names()
            for name in p.processes:
                present = name in running
                metrics[f"process:{name}"] = present
                if not present:
                    findings.append((Status.CRITICAL, f"process {name} not running"))

        metrics["uptime_s"] = int(psutil.time.time() - psutil.boot_time())
        status = worst([s for s, _ in findings])
        bad = [text for s, text in findings if s is not Status.OK]
        summary = "; ".join(bad) if bad else ", ".join(text for _, text in findings[:3])
        return check.result(status, summary, target=check.address, **metrics)

    def _disks(self, p: HostParams) -> list[tuple[str, Status, str, float]]:
        if p.mounts is not None:
            mounts = p.mounts
        else:
            by_device: dict[str, str] = {}  # one mount per device: bind mounts repeat it
            for part in psutil.disk_partitions(all=False):
                if part.fstype not in _SKIP_FSTYPES:
                    by_device.setdefault(part.device, part.mountpoint)
            mounts = sorted(by_device.values())
        out = []
        for mount in mounts:
            try:
                used = psutil.disk_usage(mount).percent
            except OSError as exc:
                out.append((mount, Status.CRITICAL, f"disk {mount}: {exc.strerror}", -1.0))
                continue
            out.append((mount, threshold(used, p.disk_warning, p.disk_critical),
                        f"disk {mount} {used:.0f}%", used))
        return out


def _process_names() -> set[str]:
    names: set[str] = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        info = proc.info
        if info.get("name"):
            names.add(info["name"])
        cmd = info.get("cmdline") or []
        if cmd:
            names.add(os.path.basename(cmd[0]))
    return names
