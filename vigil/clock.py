"""The time Vigil lives by. Tests move it forward through a file holding an offset in
seconds (VIGIL_CLOCK_OFFSET_FILE), read on every call so a running daemon follows."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

OFFSET_ENV = "VIGIL_CLOCK_OFFSET_FILE"


def offset_s() -> float:
    path = os.environ.get(OFFSET_ENV)
    if not path:
        return 0.0
    try:
        return float(Path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s())
