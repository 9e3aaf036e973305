"""The time Vigil lives by. Tests move it forward through a file holding an offset in
seconds (VIGIL_CLOCK_OFFSET_FILE), read on every call so a running daemon follows."""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from vigil.errors import UserError
from vigil.files import FileRefused, read_bounded

OFFSET_ENV = "VIGIL_CLOCK_OFFSET_FILE"
MAX_OFFSET_S = 10 * 366 * 86400.0  # a drill moves days or weeks ahead, never decades


class ClockError(UserError):
    pass


def offset_s() -> float:
    """The offset in the file; no file (yet) is none. Anything but a number of seconds
    within ten years is refused, never silently taken as zero."""
    path = os.environ.get(OFFSET_ENV)
    if not path:
        return 0.0
    if not Path(path).exists():
        return 0.0
    try:
        text = read_bounded(path, 100, OFFSET_ENV).decode("utf-8", "replace").strip()
    except FileRefused as exc:
        raise ClockError(str(exc)) from None
    try:
        value = float(text or 0)
    except ValueError:
        value = math.nan
    if not abs(value) <= MAX_OFFSET_S:  # NaN fails this too
        raise ClockError(f"{OFFSET_ENV}={path}: {text[:40]!r} is not a number of seconds "
                         f"within ten years")
    return value


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s())


def local_text(at: dt.datetime | str | None, tz: ZoneInfo | str, *,
               seconds: bool = False) -> str:
    """A time as people here read it: the site's local time, its zone named
    (`2026-12-02 18:00 CST`). The event log keeps UTC; everything printed goes through
    this."""
    if at is None or at == "":
        return ""
    when = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
    local = when.astimezone(tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz))
    return f"{local.strftime('%Y-%m-%d %H:%M:%S' if seconds else '%Y-%m-%d %H:%M')} " \
        f"{local.tzname()}"
