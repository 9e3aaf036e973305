"""backups (database, P3.2.1, P4.3.2): a fresh, whole backup in enough places.

P3.2.1(1): every system is backed up at least once a day. P4.3.2: two or more copies,
one in the machine room and one in another safe building. A location counts only when
its newest backup is young enough, not empty and matches its `.sha256` file.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from pydantic import Field

from checks.base import CheckSpec, Probe, ProbeParams
from checks.result import Metric, Result, Status

CHECKSUM_SUFFIX = ".sha256"


class BackupsParams(ProbeParams):
    locations: list[str] = Field(min_length=1)
    pattern: str = "*"
    max_age_hours: float = Field(24, gt=0)
    min_locations: int = Field(2, ge=1)
    checksum: bool = True


class BackupsProbe(Probe):
    kind = "backups"
    Params = BackupsParams

    def run(self, check: CheckSpec) -> Result:
        p: BackupsParams = check.params
        metrics: dict[str, Metric] = {}
        good: list[str] = []
        problems: list[str] = []
        newest_age: float | None = None
        for location in p.locations:
            verdict, age = _inspect(Path(location), p)
            if age is not None:
                newest_age = age if newest_age is None else min(newest_age, age)
                metrics[f"age_hours:{location}"] = round(age, 2)
            if verdict is None:
                good.append(location)
            else:
                problems.append(f"{location}: {verdict}")
        metrics["good_locations"] = len(good)
        if newest_age is not None:
            metrics["newest_age_hours"] = round(newest_age, 2)

        if not good:
            status = Status.CRITICAL
            head = "no usable backup (P3.2.1(1))"
        elif len(good) < p.min_locations:
            status = Status.WARNING
            head = f"usable backup in {len(good)} of {p.min_locations} required locations (P4.3.2)"
        else:
            status = Status.OK
            head = f"fresh backup in {len(good)} locations"
        message = "; ".join([head, *problems])
        return check.result(status, message, target=",".join(p.locations), metrics=metrics)


def _inspect(folder: Path, p: BackupsParams) -> tuple[str | None, float | None]:
    """(problem or None, age in hours of the newest backup or None)."""
    if not folder.is_dir():
        return "folder missing", None
    try:
        candidates = [f for f in folder.glob(p.pattern)
                      if f.is_file() and not f.name.endswith(CHECKSUM_SUFFIX)]
    except OSError as exc:
        return f"unreadable ({exc.strerror})", None
    if not candidates:
        return "no backup files", None
    newest = max(candidates, key=lambda f: f.stat().st_mtime)
    stat = newest.stat()
    age = (time.time() - stat.st_mtime) / 3600
    if age > p.max_age_hours:
        return f"newest {newest.name} is {age:.1f} h old (limit {p.max_age_hours:g} h)", age
    if stat.st_size == 0:
        return f"newest {newest.name} is empty", age
    if p.checksum:
        problem = _checksum_problem(newest)
        if problem:
            return problem, age
    return None, age


def _checksum_problem(backup: Path) -> str | None:
    sums = backup.with_name(backup.name + CHECKSUM_SUFFIX)
    if not sums.is_file():
        return f"{backup.name} has no {sums.name}"
    expected = sums.read_text(encoding="utf-8", errors="replace").split()[:1]
    digest = hashlib.sha256()
    with backup.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if not expected or expected[0].lower() != digest.hexdigest():
        return f"{backup.name} does not match {sums.name}"
    return None
