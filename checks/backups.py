"""backups (database, P3.2.1, P4.3.2): a fresh, whole backup in enough places.

P3.2.1(1): every system is backed up at least once a day. P4.3.2: two or more copies,
one in the machine room and one in another safe building. A location counts only when
its newest backup is young enough, not empty and matches its `.sha256` file. A location
is a local folder or a folder on another inventory host, read over SSH.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vigil.checks import ssh
from vigil.checks.base import BindContext, BindError, Probe, ProbeParams
from vigil.model import CheckSpec, SshTarget
from vigil.result import Metric, Result, Say, Status

CHECKSUM_SUFFIX = ".sha256"


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    path: str
    host: str | None = None  # an inventory host; None: on the monitoring server
    ssh: SshTarget | None = None  # filled in from the host when the inventory loads

    @property
    def label(self) -> str:
        return f"{self.host}:{self.path}" if self.host else self.path


class BackupsParams(ProbeParams):
    locations: list[Location] = Field(min_length=1)
    pattern: str = Field("*", pattern=r"^[A-Za-z0-9._*?\[\]-]+$")
    max_age_hours: float = Field(24, gt=0)
    min_locations: int = Field(2, ge=1)
    checksum: bool = True

    @field_validator("locations", mode="before")
    @classmethod
    def _plain_paths(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value


@dataclass
class Newest:
    name: str
    mtime: float
    size: int
    digest: str | None  # computed now, when asked to
    expected: str | None  # from the .sha256 file


class BackupsProbe(Probe):
    kind = "backups"
    Params = BackupsParams

    def bind(self, params: BackupsParams, ctx: BindContext) -> BackupsParams:
        ssh_targets = ctx.ssh_targets
        for i, loc in enumerate(params.locations):
            if loc.host is None:
                continue
            if loc.host not in ssh_targets:
                raise BindError(("locations", i, "host"), f"unknown host {loc.host!r}")
            target = ssh_targets[loc.host]
            if target is None:
                raise BindError(("locations", i, "host"), f"host {loc.host!r} is local "
                                "(ansible_connection=local): give its folder as a path")
            params.locations[i] = loc.model_copy(update={"ssh": target})
        return params

    def run(self, check: CheckSpec) -> Result:
        p: BackupsParams = check.params
        metrics: dict[str, Metric] = {}
        good: list[str] = []
        problems: list[Say] = []
        newest_age: float | None = None
        for location in p.locations:
            try:
                newest = (_remote(location, p, check.timeout_s) if location.host
                          else _local(Path(location.path), p))
            except ssh.SshFailure as exc:
                problems.append(Say(f"{location.label}: {exc.say.en}",
                                    f"{location.label}：{exc.say.zh}"))
                continue
            if isinstance(newest, Say):
                problems.append(Say(f"{location.label}: {newest.en}",
                                    f"{location.label}：{newest.zh}"))
                continue
            age = (time.time() - newest.mtime) / 3600
            metrics[f"age_hours:{location.label}"] = round(age, 2)
            newest_age = age if newest_age is None else min(newest_age, age)
            verdict = _judge(newest, age, p)
            if verdict is None:
                good.append(location.label)
            else:
                problems.append(Say(f"{location.label}: {verdict.en}",
                                    f"{location.label}：{verdict.zh}"))
        metrics["good_locations"] = len(good)
        if newest_age is not None:
            metrics["newest_age_hours"] = round(newest_age, 2)

        n, need = len(good), p.min_locations
        if not good:
            status = Status.CRITICAL
            head = Say("no usable backup (P3.2.1(1))", "没有可用的备份（P3.2.1(1)）")
        elif n < need:
            status = Status.WARNING
            head = Say(f"usable backup in {n} of {need} required locations (P4.3.2)",
                       f"仅 {n} 处有可用备份，预案要求 {need} 处（本机房与异地，P4.3.2）")
        else:
            status = Status.OK
            head = Say(f"fresh backup in {n} locations", f"{n} 处均有当日有效备份")
        labels = ",".join(x.label for x in p.locations)
        return check.result(status, Say.join([head, *problems]), target=labels,
                            metrics=metrics)


MISSING = Say("folder missing", "备份目录不存在")
EMPTY = Say("no backup files", "目录中没有备份文件")


def _judge(newest: Newest, age: float, p: BackupsParams) -> Say | None:
    name, limit = newest.name, f"{p.max_age_hours:g}"
    if age > p.max_age_hours:
        return Say(f"newest {name} is {age:.1f} h old (limit {limit} h)",
                   f"最新备份 {name} 已有 {age:.1f} 小时（上限 {limit} 小时）")
    if newest.size == 0:
        return Say(f"newest {name} is empty", f"最新备份 {name} 为空文件")
    if p.checksum:
        if not newest.expected:
            return Say(f"{name} has no {name}{CHECKSUM_SUFFIX}",
                       f"{name} 缺少校验文件 {name}{CHECKSUM_SUFFIX}")
        if newest.expected.lower() != (newest.digest or "").lower():
            return Say(f"{name} does not match its {CHECKSUM_SUFFIX} (corrupt copy)",
                       f"{name} 与校验值不符（备份已损坏）")
    return None


def _local(folder: Path, p: BackupsParams) -> Newest | Say:
    if not folder.is_dir():
        return MISSING
    try:
        candidates = [f for f in folder.glob(p.pattern)
                      if f.is_file() and not f.name.endswith(CHECKSUM_SUFFIX)]
    except OSError as exc:
        return Say(f"unreadable ({exc.strerror})", f"无法读取（{exc.strerror}）")
    if not candidates:
        return EMPTY
    newest = max(candidates, key=lambda f: f.stat().st_mtime)
    stat = newest.stat()
    digest = expected = None
    if p.checksum:
        sums = newest.with_name(newest.name + CHECKSUM_SUFFIX)
        if sums.is_file():
            expected = (sums.read_text(encoding="utf-8", errors="replace").split() or [""])[0]
            digest = _sha256(newest)
    return Newest(newest.name, stat.st_mtime, stat.st_size, digest, expected)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_REMOTE = """cd {path} 2>/dev/null || {{ echo @missing; exit 0; }}
newest=$(ls -t -- {pattern} 2>/dev/null | grep -v '\\.sha256$' | head -n 1)
[ -n "$newest" ] || {{ echo @empty; exit 0; }}
echo "@file $(stat -c '%Y %s' -- "$newest") $newest"
{sums}"""
_SUMS = """echo "@sum $(sha256sum -- "$newest" | cut -d' ' -f1)"
echo "@expected $(head -c 64 -- "$newest.sha256" 2>/dev/null)\""""


def _remote(location: Location, p: BackupsParams, timeout: float) -> Newest | Say:
    if location.ssh is None:
        return Say("no SSH settings for its host", "该主机未配置 SSH")
    script = _REMOTE.format(path=shlex.quote(location.path), pattern=p.pattern,
                            sums=_SUMS if p.checksum else "")
    out = ssh.run(location.ssh, script, timeout).out
    if "@missing" in out:
        return MISSING
    if "@empty" in out:
        return EMPTY
    match = re.search(r"^@file (\d+) (\d+) (.+)$", out, re.M)
    if not match:
        return Say("could not read the folder", "无法读取备份目录")
    sums = dict(re.findall(r"^@(sum|expected) ?(\S*)$", out, re.M))
    return Newest(match.group(3), float(match.group(1)), int(match.group(2)),
                  sums.get("sum") or None, sums.get("expected") or None)
