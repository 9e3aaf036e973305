"""`vigil watch`: schedule the checks, feed the tracker, drive the ladder and the outbox.

Every state change is committed before its side effect, so a SIGKILL at any instant
loses no incident, message or acknowledgement: on restart the tracker reloads open
incidents, the ladder recomputes levels from their onsets, and the outbox resends what
was queued but not recorded as sent (with the same idempotency key).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from vigil import clock, lease
from vigil.alerting import drills, silences
from vigil.alerting.incidents import FAILING, Tracker, acknowledge, calendar_for
from vigil.alerting.messages import (
    degraded_text,
    store_back_text,
    takeover_text,
    zabbix_away_text,
)
from vigil.checks.cycle import run_checks
from vigil.delivery import channels
from vigil.delivery.outbox import Outbox, queue
from vigil.domain import Level, Role
from vigil.errors import first_line
from vigil.model import Inventory
from vigil.remediations.executor import Executor
from vigil.remediations.lease_guard import write_deadline
from vigil.remediations.playbook_run import lease_deadline_file
from vigil.result import Result
from vigil.spool import Spool, default_dir
from vigil.store import Fenced, Store, StoreError
from vigil.systemd import Notifier
from vigil.zabbix.bridge import Bridge
from vigil.zabbix.push import Pusher, cycle_values, trapper_address

log = logging.getLogger("vigil.watch")

DEGRADED_AFTER_S = 15.0  # a blip of the store is no page; a minute is
REPAGE_S = 1800.0  # while it lasts, the implementation team hears again this often
STORE_RETRY_S = 5.0  # while the store is away, it is tried again this often
# What PostgreSQL says of a store that is there but set up wrong for this daemon.
MISCONFIGURED = re.compile(r'password authentication failed|no pg_hba\.conf entry|'
                           r'(database|role) "[^"]*" does not exist|'
                           r'permission denied for database')
# A run taken over waits this long: the old leader's lease guard killed its playbook when
# that lease lapsed on its own clock, before the expiry on the database's clock that let us
# lead; this is for the kill itself and the clocks' drift.
RESUME_AFTER_S = 2.0


def spool_name(store: Store) -> str:
    """The same spool across this machine's restarts of the daemon for this store."""
    digest = hashlib.sha256(store.safe_url.encode()).hexdigest()[:12]
    return f"{socket.gethostname()}-{digest}"


def _pusher(inv: Inventory) -> Pusher | None:
    if inv.zabbix is None or not inv.zabbix.trapper:
        return None
    return Pusher(*trapper_address(inv.zabbix.trapper))


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


class _Quiet(WSGIRequestHandler):
    def log_message(self, *_: Any) -> None:
        pass  # the daemon's log is its JSON lines, not an access log


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


Health = Callable[[], tuple[bool, dict[str, Any]]]


class Metrics:
    """Prometheus metrics, and /healthz for load balancers and outside monitors."""

    def __init__(self, port: int | None, address: str = "127.0.0.1",
                 health: Health | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

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
        self.leading = Gauge("vigil_leader", "1 while this daemon leads, else 0",
                             registry=self.registry)
        self.epoch = Gauge("vigil_lease_epoch", "The epoch of the lease this daemon holds "
                           "(0: it does not lead)", registry=self.registry)
        self.since = Gauge("vigil_lease_since_timestamp_seconds", "When the current leader "
                           "took the lease (0: nobody leads)", registry=self.registry)
        self.degraded = Gauge("vigil_degraded", "1 while the store is unreachable and "
                              "findings go to the local spool", registry=self.registry)
        self.zabbix_queue = Gauge("vigil_zabbix_queue", "Cycles waiting to be sent to "
                                  "Zabbix's trapper", registry=self.registry)
        self.zabbix_sent = Gauge("vigil_zabbix_values_sent", "Values Zabbix took since the "
                                 "daemon started", registry=self.registry)
        self.zabbix_lost = Gauge("vigil_zabbix_values_lost", "Values Zabbix refused, or "
                                 "dropped while it was away too long", registry=self.registry)
        self.zabbix_up = Gauge("vigil_zabbix_reachable", "0 while Zabbix's trapper does not "
                               "take Vigil's values", registry=self.registry)
        self.beats = Gauge("vigil_monitor_heartbeat_age_seconds", "Seconds since each "
                           "daemon sharing the store last beat", ["monitor", "leading"],
                           registry=self.registry)
        if port:
            metrics = make_wsgi_app(self.registry)

            def app(environ: dict[str, Any], start_response: Any) -> Any:
                if environ.get("PATH_INFO") != "/healthz" or health is None:
                    return metrics(environ, start_response)
                ok, body = health()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "application/json")])
                return [json.dumps(body).encode()]

            _Server.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            server = make_server(address, port, app, _Server, handler_class=_Quiet)
            threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


ExecutorFactory = Callable[..., Executor]


class Daemon:
    """One of the daemons sharing a store. The one holding the lease (vigil.lease) leads:
    it runs the checks and their consequences (tracker, ladder, executor, outbox) with its
    store fenced by the lease's epoch; the others wait, ready to take over."""

    def __init__(self, inv: Inventory, store: Store, *, metrics_port: int | None = None,
                 metrics_address: str = "127.0.0.1",
                 now: Callable[[], dt.datetime] = clock.now, tick_s: float = 1.0,
                 executor: ExecutorFactory | None = None, name: str | None = None,
                 spool_dir: Path | None = None) -> None:
        self.inv, self.store, self.now, self.tick_s = inv, store, now, tick_s
        self.make_executor: ExecutorFactory = executor or partial(Executor, inv, store, now=now)
        self.name = name or lease.me()
        self.systemd = Notifier()
        self.last_loop = time.monotonic()  # the end of the last whole pass of the loop
        self.stopping = threading.Event()
        self.lease: lease.Lease | None = None
        self.lease_until = 0.0  # monotonic: past it, this daemon no longer counts on the lease
        # lease_until for this daemon's playbook runs (vigil.remediations.lease_guard).
        self.deadline_file = lease_deadline_file(self.name)
        self.tracker: Tracker | None = None
        self.outbox: Outbox | None = None
        self.executor: Executor | None = None
        self.started = now().isoformat()
        self.next_run: dict[str, dt.datetime] = {}
        self._sent_seen = self._failed_seen = 0
        self._store_trouble = ""  # what the store said when it last failed us
        self._trouble_at = 0.0  # monotonic: when it last failed us
        self._trouble_since = (time.monotonic(), now())
        self._paged_at: float | None = None
        self._latest: dict[str, Result] = {}  # each check's last result while degraded
        self.spool = Spool(spool_dir or default_dir(), spool_name(store))
        self.zabbix = _pusher(inv)
        self.bridge: Bridge | None = None  # acknowledgements and maintenance, when leading
        self._zabbix_away: dt.datetime | None = None  # since when the trapper fails us
        self._zabbix_told = False
        self.metrics = Metrics(metrics_port, metrics_address, self.health)  # serves at once

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self._lead()
        sqlite = self.store.engine.dialect.name == "sqlite"
        # Away is waited out (checking into the spool); wrong is said at once: a file of
        # this machine, a password or a database name will not mend themselves.
        if self._store_trouble and (sqlite or MISCONFIGURED.search(self._store_trouble)):
            raise StoreError(f"cannot use the store {self.store.safe_url}: {self._store_trouble}")
        if self.lease is None and sqlite:
            held, _ = lease.current(self.store)
            raise StoreError(
                f"{self.store.safe_url} is in use by the daemon {held.holder if held else '?'}"
                f": a SQLite store holds one daemon; two or more share a PostgreSQL store")
        log.info("watching", extra={"inventory": self.inv.path, "checks": len(self.inv.checks),
                                    "monitor": self.name, "leading": self.lease is not None,
                                    "store": self.store.safe_url})
        if self.tracker:
            log.info("open incidents", extra={"open_incidents": len(self.tracker.open)})
        try:
            with self.store.transaction(fenced=False) as tx:
                tx.append("daemon.started", "vigil-watch", {"checks": len(self.inv.checks),
                                                            "monitor": self.name})
            self._calendar_warnings()
        except SQLAlchemyError as exc:  # the store went away as we started: go on without
            self._lost_store(exc)
        self.systemd.ready(f"watching {len(self.inv.checks)} checks"
                           + (" (leading)" if self.lease else " (standby)"))
        if self.inv.heartbeat:
            threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True).start()
        while not self.stopping.is_set():
            if self._store_trouble:
                self._degraded()
            elif self.tracker:
                try:
                    if self.spool:
                        self._merge()
                    self.cycle()
                except Fenced as exc:  # frozen or cut off past the lease: another leads
                    self._step_down(str(exc))
                except SQLAlchemyError as exc:  # the store went away mid-cycle
                    self._lost_store(exc)
            if not self._store_trouble:
                self._beat()
            # After each whole cycle: a daemon stuck in one stops answering systemd's
            # watchdog and is restarted (WatchdogSec in the unit).
            self.systemd.alive()
            self.last_loop = time.monotonic()
            due = min(self.next_run.values(), default=self.now())
            self.stopping.wait(min(self.tick_s, max(0.05, (due - self.now()).total_seconds())))
            self._lead()
        self.systemd.stopping()
        if self.zabbix:
            self.zabbix.stop()
        if self.bridge:
            self.bridge.stop()
        self.deadline_file.unlink(missing_ok=True)  # read as lapsed
        if self.executor:
            self.executor.cancel()
            self.executor.wait(10)  # the runs are stopped before the lease is handed over
        try:
            if self.lease:
                lease.release(self.store, self.lease)
            lease.leave(self.store, self.name)
            with self.store.transaction(fenced=False) as tx:
                tx.append("daemon.stopped", "vigil-watch", {"monitor": self.name})
        except SQLAlchemyError as exc:  # stopped while the store is away: the spool stays
            log.warning("stopped without the store", extra={"error": first_line(str(exc), "")})
        log.info("stopped")

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Alive: its loop came round lately (a cycle runs its checks with their timeouts)."""
        age = time.monotonic() - self.last_loop
        limit = max(60.0, 3 * max((c.timeout_s for c in self.inv.checks), default=0))
        return age < limit, {"monitor": self.name, "alive": age < limit,
                             "leading": self.lease is not None,
                             "epoch": self.lease.epoch if self.lease else None,
                             "last_cycle_age_s": round(age, 3)}

    # --- leadership --------------------------------------------------------------------

    def _lead(self) -> None:
        """Take or renew the lease; on taking it, start leading from what the store holds."""
        asked = time.monotonic()
        if self._store_trouble and asked - self._trouble_at < STORE_RETRY_S:
            # An attempt at an unreachable store can take 15 s (a cut: no answer, and
            # libpq tries with TLS and again without): one at a time, so the loop keeps
            # checking into the spool and answers systemd's watchdog.
            self._lease_ran_out()
            return
        try:
            if not self.store.schema_ready:
                self.store.create_schema()
            got = lease.claim(self.store, self.name)
        except SQLAlchemyError as exc:
            self._lost_store(exc)
            self._lease_ran_out()
            return
        if self._store_trouble:
            self._store_back()
        if got is None:
            if self.lease:
                self._step_down("another daemon holds the lease")
            if self.spool:  # the leader saw what we saw while the store was away
                self.spool.clear()
            return
        self.lease_until = asked + lease.TTL_S
        write_deadline(self.deadline_file, self.lease_until)
        if self.lease is None or self.lease.epoch != got.epoch:
            self.store.fence = (got.holder, got.epoch)
            try:
                self.tracker = Tracker(self.inv, self.store)
                self.outbox = Outbox(self.inv, self.store)
                self._sent_seen = self._failed_seen = 0  # the new outbox counts from 0
                self.executor = self.make_executor(
                    resume_after_s=RESUME_AFTER_S if got.taken_from else 0,
                    lease_deadline=self.deadline_file)
                if got.taken_from:
                    self._report_takeover(got)
                if self.bridge:  # a previous term's
                    self.bridge.stop()
                if self.inv.zabbix:
                    self.bridge = Bridge(self.inv, self.store, self.inv.zabbix, self._ack,
                                         self.now)
            except SQLAlchemyError as exc:  # gone again at once: lead from the next claim
                self.tracker = self.outbox = self.executor = None
                self._lost_store(exc)
                return
            start = self.now()
            self.next_run = {c.name: start for c in self.inv.checks}
            self.metrics.leading.set(1)
            self.metrics.epoch.set(got.epoch)
            log.info("leading", extra={"epoch": got.epoch, "taken_from": got.taken_from})
        self.lease = got

    def _lease_ran_out(self) -> None:
        if self.lease and time.monotonic() > self.lease_until:
            self._step_down("the store is unreachable and the lease has run out")

    def _report_takeover(self, got: lease.Lease) -> None:
        """The implementation team hears, through the outbox, that a monitor went silent:
        the site now runs on one monitor until it is mended. Once per change of hands."""
        self._tell_team(takeover_text(self.inv, self.name, got.taken_from, self.now()),
                        f"monitor/{got.epoch}/took-over", "monitor.took_over")

    def _tell_team(self, texts: dict[str, tuple[str, str]], key: str, kind: str) -> None:
        """A message about Vigil itself to the implementation team, through the outbox,
        once per `key`."""
        with self.store.transaction() as tx:
            for contact in self.inv.contacts_with(Role.IMPLEMENTATION_TEAM):
                title, body = texts[contact.lang]
                for index, _ in enumerate(contact.channels):
                    queue(tx, key=f"{key}/{contact.id}#{index}", contact=contact,
                          channel=index, title=title, body=body, incident=None, kind=kind,
                          now=self.now())

    def _ack(self, incident: str, contact: str, via: str) -> None:
        acked = acknowledge(self.store, self.inv, incident, contact, self.now(), via=via)
        log.info("acknowledged" if acked.quiets else "receipt confirmed",
                 extra={"incident": incident, "by": contact, "via": via, "mark": acked.mark})

    def _step_down(self, why: str) -> None:
        # The fence stays: whatever of ours is still under way writes nothing from now on.
        write_deadline(self.deadline_file, 0.0)
        if self.bridge:
            self.bridge.stop()
            self.bridge = None
        if self.executor:
            self.executor.cancel()
        self.lease = self.tracker = self.outbox = self.executor = None
        self.next_run = {}
        self.metrics.leading.set(0)
        self.metrics.epoch.set(0)
        log.warning("no longer leading", extra={"why": why})

    # --- the store unreachable ------------------------------------------------------------

    def _lost_store(self, exc: Exception) -> None:
        self._trouble_at = time.monotonic()
        if not self._store_trouble:
            log.warning("store unreachable", extra={"error": first_line(str(exc), "")})
            self._trouble_since = (time.monotonic(), self.now())
            self.metrics.degraded.set(1)
        self._store_trouble = first_line(str(getattr(exc, "orig", None) or exc),
                                         type(exc).__name__)

    def _degraded(self) -> None:
        """Keep checking, keep what is seen in the spool, and tell the implementation team
        directly: incidents, the ladder, remedies and the outbox wait for the store."""
        now, results = self._run_due()
        self.spool.add(now, results)
        self._latest.update({r.key: r for r in results})
        started, since = self._trouble_since
        quiet = time.monotonic() - started
        if quiet >= DEGRADED_AFTER_S and (self._paged_at is None or
                                          time.monotonic() - self._paged_at >= REPAGE_S):
            self._paged_at = time.monotonic()
            failing = sorted((r for r in self._latest.values() if r.status in FAILING),
                             key=lambda r: r.check)
            self._page(degraded_text(self.inv, self.name, since, self._store_trouble,
                                     [f"{r.check}：{r.text('zh')}" for r in failing],
                                     [f"{r.check}: {r.text('en')}" for r in failing]),
                       f"degraded/{since.isoformat()}")

    def _store_back(self) -> None:
        log.info("store reachable again", extra={"was": self._store_trouble})
        if self._paged_at is not None:
            self._page(store_back_text(self.inv, self.name, self._trouble_since[1]),
                       f"store-back/{self._trouble_since[1].isoformat()}")
        self._store_trouble, self._paged_at = "", None
        self._latest.clear()
        self.metrics.degraded.set(0)
        self.next_run = {}  # what the spool holds is merged; checks start afresh

    def _merge(self) -> None:
        """The spool into the event log, batch by batch in the order seen (each batch at
        the time it was seen), so an incident opens once with its true onset."""
        assert self.tracker
        merged = 0
        for at, results in self.spool.batches():
            self.tracker.observe(results, at)
            merged += len(results)
        self.spool.clear()
        log.info("spool merged", extra={"results": merged})

    def _page(self, texts: dict[str, tuple[str, str]], key: str) -> None:
        """To the implementation team's own channels, not through the outbox (which lives
        in the store): on a thread, so a slow channel never holds up the checks."""
        def send() -> None:
            for contact in self.inv.contacts_with(Role.IMPLEMENTATION_TEAM):
                title, body = texts[contact.lang]
                for channel in contact.channels:
                    why = channels.send(channel.reveal(), title, body,
                                        f"{key}/{self.name}/{contact.id}")
                    if why:
                        log.warning("page not delivered", extra={"contact": contact.id,
                                                                 "why": why})
        threading.Thread(target=send, name="degraded-page", daemon=True).start()

    def _heartbeats(self) -> None:
        """While leading, tell the receiver outside (a dead man's switch) every interval; on
        a thread of its own, so a slow receiver never holds up the checks."""
        beat = self.inv.heartbeat
        assert beat is not None
        sent = 0
        while not self.stopping.wait(beat.interval_s if sent else 0):
            held, tracker = self.lease, self.tracker
            if held is None or time.monotonic() > self.lease_until:
                continue  # a leader cut off from the store must not say all is well
            sent += 1
            body = json.dumps({"site": self.inv.site.id, "monitor": self.name,
                               "epoch": held.epoch, "at": self.now().isoformat(),
                               "open_incidents": len(tracker.open) if tracker else 0})
            why = channels.send(beat.url.reveal(), f"Vigil heartbeat: {self.inv.site.id}",
                                body, f"heartbeat/{self.inv.site.id}/{self.name}/{sent}")
            if why:
                log.warning("heartbeat not delivered", extra={"why": why})

    def _beat(self) -> None:
        # A store error is said by _lead; the heartbeat is for people, the lease counts.
        with contextlib.suppress(SQLAlchemyError):
            lease.heartbeat(self.store, self.name, self.started, self.lease)
            found, held, _ = lease.monitors(self.store)
            self.metrics.since.set(dt.datetime.fromisoformat(held.since).timestamp()
                                   if held else 0)
            self.metrics.beats.clear()
            for m in found:
                self.metrics.beats.labels(m.name, str(m.leading).lower()).set(
                    m.heartbeat_age_s)

    # --- one cycle, while leading --------------------------------------------------------

    def _run_due(self) -> tuple[dt.datetime, list[Result]]:
        """Run the checks that are due; the time after, and their results."""
        now = self.now()
        due = [c for c in self.inv.checks if self.next_run.setdefault(c.name, now) <= now]
        if not due:
            return now, []
        started = time.monotonic()
        results = run_checks(due)
        self.metrics.cycle.set(time.monotonic() - started)
        now = self.now()
        for c in due:
            self.next_run[c.name] = now + dt.timedelta(seconds=c.interval_s)
        for r in results:
            self.metrics.checks.labels(r.status.value).inc()
        return now, results

    def cycle(self) -> None:
        assert self.tracker and self.executor and self.outbox
        now, results = self._run_due()
        try:
            self._consequences(now, results)
        except SQLAlchemyError:
            self.spool.add(now, results)  # seen, not yet recorded: kept for the merge
            raise

    def _consequences(self, now: dt.datetime, results: list[Result]) -> None:
        assert self.tracker and self.executor and self.outbox
        self.tracker.drills = drills.running(self.store)
        self._silences(now)
        if results:
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
        if self.zabbix:
            self.zabbix.offer(cycle_values(self.inv, results, self._levels(), time.time(),
                                           self.zabbix.discovered()))
            self._zabbix_health(now)

    def _silences(self, now: dt.datetime) -> None:
        """Maintenance windows, Vigil's own (alerting.silences) and Zabbix's on mapped
        hosts: the tracker holds their systems' pages, the executor their automatic steps
        (a Vigil window may let those run), as it does while a drill heals its systems."""
        assert self.tracker and self.executor
        windows = silences.active(self.store, now)
        held = dict(self.bridge.silences) if self.bridge else {}
        held |= {s["system"]: silences.why(s) for s in windows}
        self.tracker.silence(held, now)
        self.executor.held = {s["system"] for s in windows if not s["steps"]}
        self.executor.quiet = set(held)
        self.executor.healing = {system for system, d in self.tracker.drills.items()
                                 if d["status"] == "healing"}

    def _zabbix_health(self, now: dt.datetime) -> None:
        """Zabbix away is an event, then (after `tell_after_minutes`) a message to the
        implementation team; back is an event. The checks never wait for it."""
        assert self.zabbix and self.inv.zabbix
        trouble, server = self.zabbix.trouble, self.inv.zabbix.trapper or ""
        if trouble and self._zabbix_away is None:
            self._zabbix_away = now
            with self.store.transaction() as tx:
                tx.append("zabbix.unreachable", "zabbix", {"server": server, "error": trouble})
        elif not trouble and self._zabbix_away is not None:
            with self.store.transaction() as tx:
                tx.append("zabbix.reachable", "zabbix", {
                    "server": server,
                    "after_s": round((now - self._zabbix_away).total_seconds())})
            self._zabbix_away, self._zabbix_told = None, False
        elif trouble and self._zabbix_away and not self._zabbix_told and \
                (now - self._zabbix_away).total_seconds() >= \
                self.inv.zabbix.tell_after_minutes * 60:
            self._zabbix_told = True
            self._tell_team(zabbix_away_text(self.inv, server, self._zabbix_away, trouble),
                            f"zabbix/{self._zabbix_away:%Y%m%dT%H%M%S}/away", "zabbix.away")
        self.metrics.zabbix_up.set(0 if trouble else 1)

    def _levels(self) -> dict[str, Level | None]:
        """Each system's gravest open incident (None: none open)."""
        assert self.tracker
        levels: dict[str, Level | None] = dict.fromkeys(self.inv.systems)
        for inc in self.tracker.open.values():
            if inc.get("drill"):  # a drill is not a real fault: Zabbix never shows it
                continue
            mark = Level(inc["mark"] or Level.IV)
            held = levels.get(inc["system"])
            if held is None or mark.rank > held.rank:
                levels[inc["system"]] = mark
        return levels

    def _export(self) -> None:
        assert self.tracker and self.outbox
        m = self.metrics
        marks: dict[str, int] = {}
        for inc in self.tracker.open.values():
            if inc.get("drill"):  # a drill counts in no real statistics
                continue
            marks[inc["mark"] or Level.IV] = marks.get(inc["mark"] or Level.IV, 0) + 1
        for mark in Level:
            m.incidents.labels(mark.value).set(marks.get(mark, 0))
        m.pending.set(len(self.outbox.pending()))
        if self.zabbix:
            m.zabbix_queue.set(len(self.zabbix.queue))
            m.zabbix_sent.set(self.zabbix.sent)
            m.zabbix_lost.set(self.zabbix.dropped + self.zabbix.failed)
        m.sent.inc(self.outbox.sent_total - self._sent_seen)
        m.failed.inc(self.outbox.failures_total - self._failed_seen)
        self._sent_seen, self._failed_seen = self.outbox.sent_total, self.outbox.failures_total

    def _calendar_warnings(self) -> None:
        today = self.now().astimezone(ZoneInfo(self.inv.site.timezone)).date()
        for en, zh in calendar_for(self.inv).warnings(today):
            log.warning(en)
            with self.store.transaction(fenced=False) as tx:
                key = f"calendar-warned:{today.isoformat()}:{en[:40]}"
                if tx.get_state(key) is None:
                    tx.append("calendar.warning", "calendar", {"message": en, "message_zh": zh})
                    tx.set_state(key, True)
