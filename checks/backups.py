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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from checks import ssh
from checks.base import BindError, CheckSpec, Probe, ProbeParams
from checks.result import Metric, Result, Status
from checks.ssh import SshTarget

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

    def bind(self, params: BackupsParams,
             ssh_targets: Mapping[str, SshTarget | None]) -> BackupsParams:
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
        problems: list[str] = []
        newest_age: float | None = None
        for location in p.locations:
            try:
                newest = (_remote(location, p, check.timeout_s) if location.host
                          else _local(Path(location.path), p))
            except ssh.SshFailure as exc:
                problems.append(f"{location.label}: {exc.message}")
                continue
            if isinstance(newest, str):
                problems.append(f"{location.label}: {newest}")
                continue
            age = (time.time() - newest.mtime) / 3600
            metrics[f"age_hours:{location.label}"] = round(age, 2)
            newest_age = age if newest_age is None else min(newest_age, age)
            verdict = _judge(newest, age, p)
            if verdict is None:
                good.append(location.label)
            else:
                problems.append(f"{location.label}: {verdict}")
        metrics["good_locations"] = len(good)
        if newest_age is not None:
            metrics["newest_age_hours"] = round(newest_age, 2)

        if not good:
            status, head = Status.CRITICAL, "no usable backup (P3.2.1(1))"
        elif len(good) < p.min_locations:
            status = Status.WARNING
            head = f"usable backup in {len(good)} of {p.min_locations} required locations (P4.3.2)"
        else:
            status, head = Status.OK, f"fresh backup in {len(good)} locations"
        message = "; ".join([head, *problems])
        return check.result(status, message, target=",".join(x.label for x in p.locations),
                            metrics=metrics)


def _judge(newest: Newest, age: float, p: BackupsParams) -> str | None:
    if age > p.max_age_hours:
        return f"newest {newest.name} is {age:.1f} h old (limit {p.max_age_hours:g} h)"
    if newest.size == 0:
        return f"newest {newest.name} is empty"
    if p.checksum:
        if not newest.expected:
            return f"{newest.name} has no {newest.name}{CHECKSUM_SUFFIX}"
        if newest.expected.lower() != (newest.digest or "").lower():
            return f"{newest.name} does not match its {CHECKSUM_SUFFIX} (corrupt copy)"
    return None


def _local(folder: Path, p: BackupsParams) -> Newest | str:
    if not folder.is_dir():
        return "folder missing"
    try:
        candidates = [f for f in folder.glob(p.pattern)
                      if f.is_file() and not f.name.endswith(CHECKSUM_SUFFIX)]
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not candidates:
        return "no backup files"
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


def _remote(location: Location, p: BackupsParams, timeout: float) -> Newest | str:
    if location.ssh is None:
        return "no SSH settings for its host"
    script = _REMOTE.format(path=shlex.quote(location.path), pattern=p.pattern,
                            sums=_SUMS if p.checksum else "")
    out = ssh.run(location.ssh, script, timeout).out
    if "@missing" in out:
        return "folder missing"
    if "@empty" in out:
        return "no backup files"
    match = re.search(r"^@file (\d+) (\d+) (.+)$", out, re.M)
    if not match:
        return "could not read the folder"
    sums = dict(re.findall(r"^@(sum|expected) ?(\S*)$", out, re.M))
    return Newest(match.group(3), float(match.group(1)), int(match.group(2)),
                  sums.get("sum") or None, sums.get("expected") or None)
