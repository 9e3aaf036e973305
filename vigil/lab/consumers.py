"""The lab component that runs `vigil.lab.exchange` (the parties' queue consumers)."""

from __future__ import annotations

import sys
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.procs import alive, read_pid, spawn, stop, wait_for


class Consumers(Component):
    name = "consumers"

    @property
    def pid_file(self) -> Path:
        return self.dir / "exchange.pid"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if alive(pid) else None

    def up(self) -> None:
        if self.pid():
            return
        pid = spawn([sys.executable, "-c", "from vigil.lab.exchange import main; main()"],
                    self.dir / "exchange.log")
        self.pid_file.write_text(f"{pid}\n")
        wait_for(self._consuming, "queue consumers", timeout=30)

    def _consuming(self) -> bool:
        from vigil.lab.exchange import QUEUES, VHOST
        from vigil.lab.mq import RabbitMQ
        from vigil.lab.procs import run

        out = run(["rabbitmqctl", "-q", "list_queues", "-p", VHOST, "name", "consumers"],
                  env=RabbitMQ(self.root).env, check=False).stdout
        counts = dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)
        return all(counts.get(q, "0") != "0" for q in QUEUES)

    def down(self) -> None:
        stop(self.pid(), "vigil.lab.exchange")

    def status(self) -> list[Health]:
        ok = bool(self.pid())
        return [Health("queue-consumers", ok, f"pid {self.pid()}" if ok else "stopped")]
