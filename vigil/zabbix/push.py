"""Each cycle's results, each system's level and Vigil's heartbeat, to Zabbix's trapper
(zabbix_utils' Sender) on a thread of its own: a slow or unreachable Zabbix never delays
a check or a page. The items are those `vigil zabbix sync` made (vigil.zabbix.sync)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from vigil.domain import Level
from vigil.model import Inventory
from vigil.result import Result
from vigil.zabbix.sync import LEVEL_VALUES, STATUS_VALUES, check_key

log = logging.getLogger("vigil.zabbix")

QUEUE = 100  # cycles kept while Zabbix is away; the oldest go first (a metric counts them)
SEP = "\x1f"  # between a value's fields in a packed cycle: in no host name, key or number


@dataclass(frozen=True)
class Value:
    host: str
    key: str
    value: int
    clock: int


def cycle_values(inv: Inventory, results: Iterable[Result],
                 levels: dict[str, Level | None], at: float) -> list[Value]:
    """One cycle for Zabbix: each result's status, each system's level (0: no open
    incident), and the heartbeat."""
    site, clock = inv.site.id, int(at)
    out = [Value(f"vigil.{site}.{r.system}", check_key(r.check), STATUS_VALUES[r.status.value],
                 clock) for r in results if r.system in inv.systems]
    out += [Value(f"vigil.{site}.{system}", "vigil.incident.level",
                  LEVEL_VALUES[level] if level else 0, clock)
            for system, level in sorted(levels.items())]
    out.append(Value(f"vigil.{site}", "vigil.heartbeat", 1, clock))
    return out


class Pusher:
    """A queue of cycles and the thread that sends them, oldest first."""

    def __init__(self, server: str, port: int) -> None:
        from zabbix_utils import Sender

        self.sender = Sender(server=server, port=port, timeout=5)
        # A cycle waits packed in one string: a hundred cycles of 10,000 values as objects
        # would be a million for the garbage collector to walk, and the daemon's cycles
        # would slow while Zabbix is away (bench/zabbix_push.py).
        self.queue: deque[tuple[int, str]] = deque(maxlen=QUEUE)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.sent = self.failed = self.dropped = 0  # values; `failed`: refused by Zabbix
        self.errors = 0  # attempts that did not reach it
        self.trouble = ""
        threading.Thread(target=self._run, name="zabbix-push", daemon=True).start()

    def offer(self, values: list[Value]) -> None:
        """Never blocks: the daemon's cycle goes on whatever Zabbix does."""
        if len(self.queue) == self.queue.maxlen:
            self.dropped += self.queue[0][0]
        self.queue.append((len(values), "\n".join(
            f"{v.host}{SEP}{v.key}{SEP}{v.value}{SEP}{v.clock}" for v in values)))
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _run(self) -> None:
        from zabbix_utils import ItemValue

        while not self.stopping.is_set():
            self.wake.wait(5)
            self.wake.clear()
            while self.queue and not self.stopping.is_set():
                _, packed = self.queue[0]
                try:
                    resp = self.sender.send([ItemValue(host, key, value, int(clock))
                                             for host, key, value, clock in (
                                                 line.split(SEP) for line in
                                                 packed.split("\n"))])
                except Exception as exc:  # zabbix_utils raises its own and socket errors
                    self.errors += 1
                    if not self.trouble:
                        log.warning("zabbix unreachable", extra={"error": str(exc)[:200]})
                    self.trouble = str(exc)[:200]
                    self.stopping.wait(min(30.0, 2.0 * self.errors))  # then try again
                    break
                self.queue.popleft()
                if self.trouble:
                    log.info("zabbix reachable again", extra={"was": self.trouble})
                self.trouble, self.errors = "", 0
                self.sent += int(resp.processed)
                self.failed += int(resp.failed)


def trapper_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else (value, 10051)
