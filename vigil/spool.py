"""What a daemon saw while the store was unreachable, kept on its own disc until the store
returns: one JSON line per check cycle, flushed and fsynced before the next, so a crash
loses at most the cycle under way. The leader merges its spool into the event log in
order; a daemon that finds another leading when the store returns drops its own (that
leader saw the same checks)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

from vigil.result import Result

MAX_BYTES = 256 * 1024 * 1024  # days of a county's checks; beyond, the oldest half goes


def default_dir() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return Path(os.environ.get("VIGIL_SPOOL_DIR") or state / "vigil" / "spool")


class Spool:
    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / f"{name.replace('/', '_').replace(':', '_')}.jsonl"

    def add(self, at: dt.datetime, results: list[Result]) -> None:
        if not results:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"at": at.isoformat(),
                           "results": [r.model_dump(mode="json") for r in results]})
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if self.path.stat().st_size > MAX_BYTES:
            self._halve()

    def batches(self) -> Iterator[tuple[dt.datetime, list[Result]]]:
        """In the order they were seen; a line cut short by a crash is skipped."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    raw = json.loads(line)
                    yield (dt.datetime.fromisoformat(raw["at"]),
                           [Result.model_validate(r) for r in raw["results"]])
                except (ValueError, KeyError, TypeError):
                    continue

    def __bool__(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _halve(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = self.path.with_suffix(".tmp")
        kept.write_text("".join(lines[len(lines) // 2:]), encoding="utf-8")
        os.replace(kept, self.path)
