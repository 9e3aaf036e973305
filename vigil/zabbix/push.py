"""Each cycle's results, each system's level and Vigil's heartbeat, to Zabbix's trapper
(zabbix_utils' Sender) on a thread of its own: a slow or unreachable Zabbix never delays
a check or a page. The items are those `vigil zabbix sync` made (vigil.zabbix.sync)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from vigil.domain import Level
from vigil.model import Inventory
from vigil.result import Result
from vigil.zabbix.sync import DISCOVERY, LEVEL_VALUES, STATUS_VALUES, check_key, metric_key

log = logging.getLogger("vigil.zabbix")

QUEUE = 100  # cycles kept while Zabbix is away; the oldest go first (a metric counts them)
DISCOVERY_AGAIN_S = 3600.0
RETELL_S = 10.0  # after a cycle with discovery data had values refused
SEP = "\x1f"  # between a value's fields in a packed cycle: in no host name, key or number


@dataclass(frozen=True)
class Value:
    host: str
    key: str
    value: int | float | str
    clock: int


def cycle_values(inv: Inventory, results: Iterable[Result],
                 levels: dict[str, Level | None], at: float,
                 discovered: dict[str, set[tuple[str, str]]] | None = None) -> list[Value]:
    """One cycle for Zabbix: each result's status and numeric metrics, each system's level
    (0: no open incident), and the heartbeat. `discovered` (host -> its (check, metric)
    pairs told to Zabbix, kept by the caller): a host with a new pair gets its whole
    list again as discovery data first, so Zabbix makes the metric's item."""
    site, clock = inv.site.id, int(at)
    out: list[Value] = []
    metrics: list[Value] = []
    pairs: dict[str, set[tuple[str, str]]] = {}
    for r in results:
        if r.system not in inv.systems:
            continue
        host = f"vigil.{site}.{r.system}"
        out.append(Value(host, check_key(r.check), STATUS_VALUES[r.status.value], clock))
        for name, value in sorted(r.metrics.items()):
            if isinstance(value, bool):
                value = int(value)
            if isinstance(value, int | float):
                metrics.append(Value(host, metric_key(r.check, name), value, clock))
                pairs.setdefault(host, set()).add((r.check, name))
    if discovered is not None:
        for host, seen in sorted(pairs.items()):
            known = discovered.setdefault(host, set())
            if not seen <= known:
                known |= seen
                out.append(Value(host, DISCOVERY, json.dumps(
                    [{"{#CHECK}": c, "{#METRIC}": m} for c, m in sorted(known)],
                    ensure_ascii=False), clock))
    out += metrics
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
        # host -> the (check, metric) pairs told to Zabbix's discovery; told again each
        # hour, after Zabbix was away (what it missed may have been dropped), and soon
        # after Zabbix refused values of a cycle that carried it.
        self._discovered: dict[str, set[tuple[str, str]]] = {}
        self._discovered_at = time.monotonic()
        threading.Thread(target=self._run, name="zabbix-push", daemon=True).start()

    def discovered(self) -> dict[str, set[tuple[str, str]]]:
        if time.monotonic() - self._discovered_at > DISCOVERY_AGAIN_S:
            self._discovered, self._discovered_at = {}, time.monotonic()
        return self._discovered

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
                    self._discovered_at = float("-inf")  # tell the discovery again
                self.trouble, self.errors = "", 0
                self.sent += int(resp.processed)
                self.failed += int(resp.failed)
                if int(resp.failed) and f"{SEP}{DISCOVERY}{SEP}" in packed:
                    # Zabbix refused some: a rule or items it does not know yet (its
                    # configuration cache lags a sync). Tell the discovery again soon.
                    self._discovered_at = min(self._discovered_at, time.monotonic()
                                              - DISCOVERY_AGAIN_S + RETELL_S)


def trapper_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else (value, 10051)
