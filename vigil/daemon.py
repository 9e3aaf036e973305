"""`vigil watch`: schedule the checks, feed the tracker, drive the ladder and the outbox.

Every state change is committed before its side effect, so a SIGKILL at any instant
loses no incident, message or acknowledgement: on restart the tracker reloads open
incidents, the ladder recomputes levels from their onsets, and the outbox resends what
was queued but not recorded as sent (with the same idempotency key).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from vigil import clock
from vigil.alerting.incidents import Tracker
from vigil.checks.cycle import run_checks
from vigil.delivery.outbox import Outbox
from vigil.domain import Level
from vigil.model import Inventory
from vigil.remediations.executor import Executor
from vigil.store import Store
from vigil.systemd import Notifier

log = logging.getLogger("vigil.watch")


class JsonLines(logging.Formatter):
    """One JSON object a line: easy for journald, Loki or a grep."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname.lower(), "logger": record.name,
                                "msg": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__ and \
                    key not in ("message", "asctime"):
                line[key] = value
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger("vigil")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


class Metrics:
    def __init__(self, port: int | None, address: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.incidents = Gauge("vigil_incidents_open", "Open incidents by level mark",
                               ["mark"], registry=self.registry)
        self.pending = Gauge("vigil_outbox_pending", "Messages waiting for delivery",
                             registry=self.registry)
        self.sent = Counter("vigil_messages_sent_total", "Messages delivered",
                            registry=self.registry)
        self.failed = Counter("vigil_delivery_failures_total", "Failed delivery attempts",
                              registry=self.registry)
        self.checks = Counter("vigil_check_runs_total", "Checks run", ["status"],
                              registry=self.registry)
        self.cycle = Gauge("vigil_cycle_seconds", "Duration of the last check cycle",
                           registry=self.registry)
        if port:
            start_http_server(port, addr=address, registry=self.registry)


class Daemon:
    def __init__(self, inv: Inventory, store: Store, *, metrics_port: int | None = None,
                 metrics_address: str = "127.0.0.1",
                 now: Callable[[], dt.datetime] = clock.now, tick_s: float = 1.0,
                 executor: Executor | None = None) -> None:
        self.inv, self.store, self.now, self.tick_s = inv, store, now, tick_s
        self.tracker = Tracker(inv, store)
        self.outbox = Outbox(inv, store)
        self.executor = executor or Executor(inv, store, now=now)
        self.metrics = Metrics(metrics_port, metrics_address)
        self.systemd = Notifier()
        self.stopping = threading.Event()
        start = now()
        self.next_run = {c.name: start for c in inv.checks}
        self._sent_seen = self._failed_seen = 0

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info("watching", extra={"inventory": self.inv.path, "checks": len(self.inv.checks),
                                    "open_incidents": len(self.tracker.open),
                                    "store": self.store.safe_url})
        self._calendar_warnings()
        with self.store.transaction() as tx:
            tx.append("daemon.started", "vigil-watch", {"checks": len(self.inv.checks)})
        self.systemd.ready(f"watching {len(self.inv.checks)} checks")
        while not self.stopping.is_set():
            self.cycle()
            # After each whole cycle: a daemon stuck in one stops answering systemd's
            # watchdog and is restarted (WatchdogSec in the unit).
            self.systemd.alive()
            wait = min(self.tick_s, max(0.05, (min(self.next_run.values(), default=self.now())
                                               - self.now()).total_seconds()))
            self.stopping.wait(wait)
        self.systemd.stopping()
        with self.store.transaction() as tx:
            tx.append("daemon.stopped", "vigil-watch", {})
        log.info("stopped")

    def cycle(self) -> None:
        now = self.now()
        due = [c for c in self.inv.checks if self.next_run[c.name] <= now]
        if due:
            started = time.monotonic()
            results = run_checks(due)
            self.metrics.cycle.set(time.monotonic() - started)
            now = self.now()
            for c in due:
                self.next_run[c.name] = now + dt.timedelta(seconds=c.interval_s)
            for r in results:
                self.metrics.checks.labels(r.status.value).inc()
            before = set(self.tracker.open)
            self.tracker.observe(results, now)
            for opened in set(self.tracker.open) - before:
                log.info("incident opened", extra={"incident": opened})
            for closed in before - set(self.tracker.open):
                log.info("incident recovered", extra={"incident": closed})
        else:
            self.tracker.tick(now)
        self.executor.tick(now)
        self.outbox.deliver(now)
        self._export()

    def _export(self) -> None:
        m = self.metrics
        marks: dict[str, int] = {}
        for inc in self.tracker.open.values():
            marks[inc["mark"] or Level.IV] = marks.get(inc["mark"] or Level.IV, 0) + 1
        for mark in Level:
            m.incidents.labels(mark.value).set(marks.get(mark, 0))
        m.pending.set(len(self.outbox.pending()))
        m.sent.inc(self.outbox.sent_total - self._sent_seen)
        m.failed.inc(self.outbox.failures_total - self._failed_seen)
        self._sent_seen, self._failed_seen = self.outbox.sent_total, self.outbox.failures_total

    def _calendar_warnings(self) -> None:
        today = self.now().astimezone(self.tracker.tz).date()
        for en, zh in self.tracker.calendar.warnings(today):
            log.warning(en)
            with self.store.transaction() as tx:
                key = f"calendar-warned:{today.isoformat()}:{en[:40]}"
                if tx.get_state(key) is None:
                    tx.append("calendar.warning", "calendar", {"message": en, "message_zh": zh})
                    tx.set_state(key, True)
