"""host (infrastructure, P4.3.1): CPU, load, memory, each mount's disk, named processes,
clock offset and uptime — locally via psutil, or over SSH on a remote host.

A drifting clock matters here: signature verification of vouchers fails when the
clocks of the signing and verifying parties disagree.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Literal

import psutil
from pydantic import Field

from vigil.checks import ssh
from vigil.checks.base import Finding, Probe, ProbeParams, threshold
from vigil.model import CheckSpec
from vigil.result import Metric, Result, Say, Status, worst

# Pseudo file systems say nothing about whether a backup or a WAL segment still fits.
_SKIP_FSTYPES = {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "nsfs", "iso9660"}


class HostParams(ProbeParams):
    mode: Literal["auto", "local", "ssh"] = "auto"  # auto: SSH unless the host is local
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
    clock_warning_s: float = Field(1.0, gt=0)
    clock_critical_s: float = Field(5.0, gt=0)
    reboot_window_s: float = Field(900, ge=0, description="uptime below this: rebooted")


@dataclass
class Facts:
    cpu_percent: float
    load1: float
    cores: int
    memory_percent: float
    disks: dict[str, float]  # mount -> percent used
    processes: set[str]
    uptime_s: float
    clock_offset_s: float = 0.0
    clock_uncertainty_s: float = 0.0  # half the round trip the offset was measured in
    problems: list[Say] = field(default_factory=list)


class HostProbe(Probe):
    kind = "host"
    Params = HostParams

    def run(self, check: CheckSpec) -> Result:
        p: HostParams = check.params
        remote = p.mode == "ssh" or (p.mode == "auto" and check.ssh is not None)
        if remote:
            if check.ssh is None:
                return check.result(Status.UNKNOWN, Say(
                    "mode ssh but the host has no SSH settings",
                    "要求 SSH 检查，但该主机未配置 SSH"))
            try:
                facts = remote_facts(check.ssh, p, check.timeout_s)
            except ssh.SshFailure as exc:
                return check.result(Status.CRITICAL, exc.say, reachable=False,
                                    host_key_ok=not exc.host_key)
        else:
            facts = local_facts(p)
        return evaluate(check, p, facts)


def evaluate(check: CheckSpec, p: HostParams, f: Facts) -> Result:
    metrics: dict[str, Metric] = {"reachable": True}
    findings: list[Finding] = []

    metrics["cpu_percent"] = round(f.cpu_percent, 1)
    cpu = f"{f.cpu_percent:.0f}%"
    findings.append((threshold(f.cpu_percent, p.cpu_warning, p.cpu_critical),
                     Say(f"CPU {cpu}", f"CPU {cpu}")))
    per_core = f.load1 / max(1, f.cores)
    metrics["load1_per_core"] = round(per_core, 2)
    findings.append((threshold(per_core, p.load_warning, p.load_critical),
                     Say(f"load {per_core:.2f}/core", f"负载 {per_core:.2f}/核")))
    metrics["memory_percent"] = round(f.memory_percent, 1)
    mem = f"{f.memory_percent:.0f}%"
    findings.append((threshold(f.memory_percent, p.memory_warning, p.memory_critical),
                     Say(f"memory {mem}", f"内存 {mem}")))
    wanted = p.mounts if p.mounts is not None else sorted(f.disks)
    for mount in wanted:
        used = f.disks.get(mount)
        if used is None:
            findings.append((Status.CRITICAL, Say(f"disk {mount} not mounted",
                                                  f"磁盘 {mount} 未挂载")))
            continue
        metrics[f"disk_percent:{mount}"] = used
        findings.append((threshold(used, p.disk_warning, p.disk_critical),
                         Say(f"disk {mount} {used:.0f}%", f"磁盘 {mount} 已用 {used:.0f}%")))
    for name in p.processes:
        present = name in f.processes
        metrics[f"process:{name}"] = present
        if not present:
            findings.append((Status.CRITICAL, Say(f"process {name} not running",
                                                  f"进程 {name} 未运行")))
    metrics["clock_offset_s"] = round(f.clock_offset_s, 3)
    metrics["clock_uncertainty_s"] = round(f.clock_uncertainty_s, 3)
    # As NTP does: only what the round trip cannot explain is the clock's fault.
    drift = max(0.0, abs(f.clock_offset_s) - f.clock_uncertainty_s)
    if drift >= p.clock_warning_s:
        off = f"{f.clock_offset_s:+.1f}"
        findings.append((threshold(drift, p.clock_warning_s, p.clock_critical_s),
                         Say(f"clock off by {off}s (signatures may fail)",
                             f"时钟偏差 {off} 秒（电子签名验证可能失败）")))
    metrics["uptime_s"] = int(f.uptime_s)
    if f.uptime_s < p.reboot_window_s:
        ago = f"{f.uptime_s / 60:.0f}"
        findings.append((Status.WARNING, Say(f"rebooted {ago} min ago", f"{ago} 分钟前重启过")))
    findings.extend((Status.UNKNOWN, say) for say in f.problems)

    bad = [say for s, say in findings if s is not Status.OK]
    status = worst([s for s, _ in findings])
    summary = Say.join(bad) if bad else Say(", ".join(s.en for _, s in findings[:3]),
                                            "，".join(s.zh for _, s in findings[:3]))
    return check.result(status, summary, metrics=metrics)


def local_facts(p: HostParams) -> Facts:
    by_device: dict[str, str] = {}  # one mount per device: bind mounts repeat it
    for part in psutil.disk_partitions(all=False):
        if part.fstype not in _SKIP_FSTYPES:
            by_device.setdefault(part.device, part.mountpoint)
    disks: dict[str, float] = {}
    for mount in set(by_device.values()) | set(p.mounts or []):
        with contextlib.suppress(OSError):  # reported as "not mounted" when asked for
            disks[mount] = psutil.disk_usage(mount).percent
    names: set[str] = set()
    if p.processes:
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info.get("name"):
                names.add(proc.info["name"])
            if proc.info.get("cmdline"):
                names.add(os.path.basename(proc.info["cmdline"][0]))
    return Facts(cpu_percent=psutil.cpu_percent(interval=0.2), load1=os.getloadavg()[0],
                 cores=os.cpu_count() or 1, memory_percent=psutil.virtual_memory().percent,
                 disks=disks, processes=names, uptime_s=time.time() - psutil.boot_time())


# One round trip gathers everything; sections are parsed by their @markers.
_REMOTE = (
    "echo @stat1; head -1 /proc/stat; sleep 0.2; echo @stat2; head -1 /proc/stat; "
    "echo @loadavg; cat /proc/loadavg; echo @nproc; nproc; "
    "echo @meminfo; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; "
    "echo @df; df -P -B1 -x tmpfs -x devtmpfs -x overlay -x squashfs 2>/dev/null; "
    "echo @procs; ps -eo comm=; echo @uptime; cat /proc/uptime"
)


CLOCK_SAMPLES = 3


def remote_facts(target: ssh.SshTarget, p: HostParams, timeout: float) -> Facts:
    # The clock is read in round trips of its own; as NTP's clock filter does, the
    # shortest of a few bounds the estimate best (a busy machine stretches some).
    samples = []
    for _ in range(CLOCK_SAMPLES):
        before = time.time()
        clock = ssh.run(target, "echo @time; date +%s.%N", timeout)
        after = time.time()
        samples.append((after - before, clock.out, (before + after) / 2))
    rtt, clock_out, midpoint = min(samples)
    out = ssh.run(target, _REMOTE, timeout)
    facts = parse_remote(out.out + "\n" + clock_out, local_midpoint=midpoint)
    facts.clock_uncertainty_s = rtt / 2
    return facts


def parse_remote(text: str, local_midpoint: float) -> Facts:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@"):
            current = line[1:].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    problems: list[Say] = []

    def first(name: str) -> str:
        lines = sections.get(name) or [""]
        return lines[0]

    def cpu_ticks(name: str) -> tuple[int, int]:
        fields = [int(x) for x in first(name).split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        (t1, i1), (t2, i2) = cpu_ticks("stat1"), cpu_ticks("stat2")
        cpu = 100.0 * (1 - (i2 - i1) / (t2 - t1)) if t2 > t1 else 0.0
    except (ValueError, IndexError):
        cpu, problems = 0.0, [*problems, Say("CPU counters unreadable", "无法读取 CPU 计数")]
    mem = {line.split(":")[0]: int(line.split()[1]) for line in sections.get("meminfo", [])
           if len(line.split()) >= 2}
    memory = 100.0 * (1 - mem["MemAvailable"] / mem["MemTotal"]) if mem.get("MemTotal") else 0.0
    disks: dict[str, float] = {}
    for line in sections.get("df", [])[1:]:
        cols = line.split()
        if len(cols) >= 6 and cols[4].endswith("%"):
            disks.setdefault(cols[5], float(cols[4].rstrip("%")))
    try:
        remote_time = float(first("time"))
        offset = remote_time - local_midpoint
    except ValueError:
        offset, problems = 0.0, [*problems, Say("remote clock unreadable", "无法读取远程时钟")]
    return Facts(
        cpu_percent=cpu, load1=float((first("loadavg").split() or ["0"])[0]),
        cores=int(first("nproc") or 1), memory_percent=memory, disks=disks,
        processes={line.strip() for line in sections.get("procs", []) if line.strip()},
        uptime_s=float((first("uptime").split() or ["0"])[0]), clock_offset_s=offset,
        problems=problems)
