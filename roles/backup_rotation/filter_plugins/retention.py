"""backup_keep: which backups a daily + weekly retention policy keeps."""

from __future__ import annotations

import datetime as dt
import re

_STAMP = re.compile(r"-(\d{8})\.dump$")


def backup_keep(names: list[str], keep_daily: int, keep_weekly: int) -> list[str]:
    """The newest `keep_daily` backups, plus the newest `keep_weekly` Sunday ones."""
    dated = sorted(((dt.datetime.strptime(m.group(1), "%Y%m%d").date(), n) for n in set(names)
                    if (m := _STAMP.search(n))), reverse=True)
    keep = [n for _d, n in dated[:keep_daily]]
    sundays = [n for d, n in dated[keep_daily:] if d.weekday() == 6]
    return keep + sundays[:keep_weekly]


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"backup_keep": backup_keep}
