"""The lab component that runs `vigil.lab.exchange` (the parties' queue consumers)."""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import urllib.request
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.procs import LabError, alive, read_pid, spawn, stop, wait_for


class Consumers(Component):
    name = "consumers"

    @property
    def pid_file(self) -> Path:
        return self.dir / "exchange.pid"

    @property
    def received(self) -> Path:
        """What the consumers received, a JSON line a message."""
        return self.dir / "received.jsonl"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if alive(pid) else None

    def up(self) -> None:
        if self.pid():
            return
        pid = spawn([sys.executable, "-c", "import sys; from vigil.lab.exchange import main; "
                     "main(sys.argv[1])", str(self.received)], self.dir / "exchange.log")
        self.pid_file.write_text(f"{pid}\n")
        wait_for(self._consuming, "queue consumers", timeout=30)

    def _consumers(self) -> dict[str, int]:
        """Consumers per queue as the management API (what the mq probe reads) reports."""
        from vigil.lab.exchange import QUEUES, VHOST

        request = urllib.request.Request(
            f"http://127.0.0.1:15672/api/queues/{VHOST}?columns=name,consumers",
            headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                queues = json.loads(reply.read())
        except (OSError, ValueError):
            return {}
        return {q["name"]: int(q.get("consumers") or 0) for q in queues if q["name"] in QUEUES}

    def _consuming(self) -> bool:
        counts = self._consumers()
        return bool(counts) and all(counts.values())

    def down(self) -> None:
        if stop(self.pid(), "vigil.lab.exchange"):
            # The broker notices the closed connection a moment later.
            with contextlib.suppress(LabError):
                wait_for(lambda: not any(self._consumers().values()), "consumers gone", 15)

    def status(self) -> list[Health]:
        ok = bool(self.pid())
        return [Health("queue-consumers", ok, f"pid {self.pid()}" if ok else "stopped")]
