"""Two `vigil watch` daemons sharing the lab's PostgreSQL store: one leads; when it is frozen
(SIGSTOP), killed or cut off from the store, the other takes over within 10 s and pages
about a fault that happened meanwhile; the old one, back, writes nothing more and stands
by. A remedy under way when its leader is frozen or killed never runs under two leaders
at once, and ends verified."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.conftest import ROOT
from tests.lab.watcher import CUT_GID, Cut, Watch, leader, stands_by, wait_until
from tests.receivers import SmtpReceiver, WebhookReceiver
from vigil import lab, lease
from vigil.remediations import steps
from vigil.store import Store

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]

TAKEOVER_S = 10.0  # the target
KILLS = 50
def opened_while_open(store: Store) -> list[str]:
    """Incidents opened for a system that already had one open: what a leader acting on a
    stale view (frozen, cut off) would do if its writes were not fenced off."""
    events = sorted(store.events(kind="incident.opened") +
                    store.events(kind="incident.recovered"), key=lambda e: e.seq)
    open_: set[str] = set()
    twice = []
    for e in events:
        system = e.subject.rsplit(".", 2)[0]
        if e.kind == "incident.recovered":
            open_.discard(system)
        elif system in open_:
            twice.append(e.subject)
        else:
            open_.add(system)
    return twice


def takeover(survivor: Watch, fault: Callable[[], None]) -> float:
    """Seconds from the fault to the survivor leading."""
    started = time.monotonic()
    fault()
    wait_until("the takeover", lambda: leader(survivor) == survivor.name, timeout=30)
    return time.monotonic() - started


def test_a_frozen_killed_or_cut_off_leader_is_replaced_within_10_s(
        tmp_path: Path, watches: Callable[..., Watch], pg_store_url: str) -> None:
    webhook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    cut = Cut()
    try:
        a, b = (watches(tmp_path / n, webhook, smtp, observe_only=True, store_url=pg_store_url)
                for n in ("a", "b"))
        a.start(group=CUT_GID)
        wait_until("a leads", lambda: leader(a) == a.name, timeout=60)
        b.start()
        wait_until("b stands by", lambda: any(
            m.name == b.name and not m.leading for m in lease.monitors(b.store())[0]), timeout=60)

        # Frozen: its lease runs out on the database's clock.
        assert a.proc
        frozen_s = takeover(b, lambda: a.proc.send_signal(signal.SIGSTOP))  # type: ignore[union-attr]
        assert frozen_s < TAKEOVER_S, f"takeover after a freeze took {frozen_s:.1f} s"
        # A fault while a is still frozen: b, now leading, pages about it.
        lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
        wait_until("the page from the new leader", lambda: any(
            "四级" in t and "支付系统数据库" in t for t in webhook.titles()), timeout=60)
        a.proc.send_signal(signal.SIGCONT)
        wait_until("a stands by again", stands_by(a), timeout=30)
        assert leader(b) == b.name
        assert b"no longer leading" in (tmp_path / "a/watch.log").read_bytes()
        # Thawed, a went on with the cycle it was in, on its old view: had its writes not
        # been fenced off, it would have opened the standby's incidents a second time.
        assert b.store().events(kind="incident.opened")
        assert opened_while_open(b.store()) == []

        killed_s = takeover(a, b.kill)
        assert killed_s < TAKEOVER_S, f"takeover after kill -9 took {killed_s:.1f} s"

        # Cut off: the network between a (leading) and the store drops a's packets. b,
        # restarted, takes over and pages about a fault that comes meanwhile.
        b.start()
        wait_until("b stands by", stands_by(b), timeout=60)
        lab.up(["pg"], progress=lambda _m: None)
        wait_until("the standby's incident recovered", lambda: a.open_incidents() == [],
                   timeout=60)
        level_iv = len([t for t in webhook.titles() if "四级" in t])
        cut_s = takeover(b, cut.start)
        assert cut_s < TAKEOVER_S, f"takeover after a network cut took {cut_s:.1f} s"
        lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
        wait_until("the page from the new leader", lambda: len(
            [t for t in webhook.titles() if "四级" in t]) > level_iv, timeout=60)
        cut.stop()
        wait_until("a stands by after the cut", stands_by(a), timeout=60)
        # Back on the network, a learns it lost the lease (its next write is refused, or
        # the store was unreachable past its lease) and stands by.
        assert (tmp_path / "a/watch.log").read_bytes().count(b"no longer leading") == 2
        assert opened_while_open(b.store()) == []

        epochs = [e.data["epoch"] for e in a.store().events(kind="monitor.leader")]
        assert epochs == [1, 2, 3, 4]
        # The team heard of each silent leader (frozen, cut off), through the outbox; the
        # killed one, restarted on its machine, is in the event log only.
        wait_until("the failover pages", lambda: {
            k.split("/")[1] for k in set(webhook.keys()) if "/took-over/duty#" in k} == {"2", "4"})
        assert any("Vigil 监控切换" in t and a.name in t for t in webhook.titles())
        # Every page queued for the duty officer arrived, each key at most twice (at
        # least once: a leader stopped between sending and recording sends it again).
        duty = {k for k in a.queued() if k.rsplit("/", 1)[-1].startswith("duty#")}
        assert duty
        wait_until("every page at the webhook", lambda: duty <= set(webhook.keys()), timeout=60)
        assert max(webhook.keys().values()) <= 2
        print(f"takeover after SIGSTOP {frozen_s:.1f} s, after kill -9 {killed_s:.1f} s, "
              f"after a network cut {cut_s:.1f} s")
    finally:
        cut.stop()
        webhook.stop()
        smtp.stop()


def test_kills_between_sending_and_recording_lose_nothing_and_repeat_a_key_at_most_once(
        tmp_path: Path, watches: Callable[..., Watch], pg_store_url: str) -> None:
    """The receiver SIGKILLs the leading daemon on the first arrival of each page, before
    answering it: the kill lands after the page left and before it is recorded as sent.
    The harness restarts whichever daemon died; the other takes over. At least 50 kills."""
    kills: list[str] = []
    store = Store(pg_store_url)

    def kill_the_leader(message: dict[str, Any]) -> None:
        if len(kills) >= KILLS or webhook.keys()[message.get("key") or ""] != 1:
            return  # a resend (the same key again) goes through: livelock otherwise
        held, _ = lease.current(store)
        if held:
            kills.append(held.holder)
            os.kill(int(held.holder.rpartition(":")[2]), signal.SIGKILL)

    webhook = WebhookReceiver(on_post=kill_the_leader).start()
    smtp = SmtpReceiver().start()
    try:
        # A reminder every 3 s while the fault is open: a steady stream of pages.
        site = {"vigil_escalation": {"open_after": 2, "recover_after": 2,
                                     "renotify_minutes": 0.05}}
        pair = [watches(tmp_path / n, webhook, smtp, observe_only=True, site=site,
                        store_url=pg_store_url) for n in ("a", "b")]
        lives: list[set[int]] = [set(), set()]  # each slot's processes, one a restart

        def start(slot: int) -> None:
            pair[slot].start()
            assert pair[slot].proc
            lives[slot].add(pair[slot].proc.pid)

        for slot in (0, 1):
            start(slot)
        lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
        deadline = time.monotonic() + 600
        while len(kills) < KILLS:
            assert time.monotonic() < deadline, f"only {len(kills)} kills"
            for slot, w in enumerate(pair):
                if w.proc and w.proc.poll() is not None:
                    start(slot)  # back, as the standby
            time.sleep(0.1)
        lab.up(["pg"], progress=lambda _m: None)
        for slot, w in enumerate(pair):
            if w.proc and w.proc.poll() is not None:
                start(slot)
        wait_until("recovered, every page delivered", lambda: (
            pair[0].open_incidents() == [] and not pair[0].store().states("pending:")),
            timeout=180)
        for w in pair:
            assert w.stop() == 0

        assert store.verify().ok
        duty = {k for k in pair[0].queued() if k.rsplit("/", 1)[-1].startswith("duty#")}
        got = webhook.keys()
        assert set(got) == duty  # every page arrived, no stranger
        assert max(got.values()) <= 2  # at least once: repeated at most once
        repeated = [k for k, n in got.items() if n == 2]
        for key in repeated:  # a repeat is the same page under the same key
            first, again = (m for m in webhook.received if m["key"] == key)
            assert (first["title"], first["message"]) == (again["title"], again["message"])
        assert len(set(kills)) == len(kills) >= KILLS  # each kill a leader of its own
        killed = [int(h.rpartition(":")[2]) for h in kills]
        per_slot = [len(lives[slot] & set(killed)) for slot in (0, 1)]
        assert min(per_slot) >= KILLS // 4, per_slot  # both daemons were killed, often
        print(f"{len(kills)} kills, {len(repeated)} pages repeated once, "
              f"{len(duty)} pages in all")
    finally:
        webhook.stop()
        smtp.stop()


def test_the_store_away_for_90_s_pages_the_team_and_loses_no_incident(
        tmp_path: Path, watches: Callable[..., Watch], pg_store_url: str) -> None:
    """The store's PostgreSQL (the lab's primary, itself a fault of the watched pair) is
    stopped for 90 s: the daemon keeps checking into its spool, pages the implementation
    team directly within a minute, and when the store returns the incident is in the log
    once, with the onset it had, and the team hears the store is back."""
    webhook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    try:
        w = watches(tmp_path, webhook, smtp, observe_only=True, store_url=pg_store_url)
        w.start()
        wait_until("it leads", lambda: leader(w) == w.name and bool(
            w.store().events(kind="daemon.started")), timeout=60)
        lab.component("pg").stop_node("primary")  # type: ignore[attr-defined]
        stopped = time.monotonic()
        wait_until("the degraded page", lambda: any(
            "Vigil 监控降级" in t for t in webhook.titles()), timeout=75)
        paged_s = time.monotonic() - stopped
        assert paged_s < 60, f"the team heard after {paged_s:.0f} s"
        page = next(m for m in webhook.received if "Vigil 监控降级" in m["title"])
        # What it sees meanwhile: the primary (the store's own database) is down.
        assert "事件库" in page["message"] and "payment-db" in page["message"]
        # A second daemon started now (a restart, a new server) keeps watching too.
        late = watches(tmp_path / "late", webhook, smtp, observe_only=True,
                       store_url=pg_store_url)
        late.start()
        wait_until("the late daemon checks", lambda: b"store unreachable" in (
            tmp_path / "late/watch.log").read_bytes(), timeout=60)
        wait_until("90 s of outage", lambda: time.monotonic() - stopped >= 90, timeout=120)
        assert late.proc and late.proc.poll() is None, "started without its store, it gave up"
        assert list((tmp_path / "spool").glob("*.jsonl")), "findings were spooled"
        restarted = dt.datetime.now(dt.UTC)
        lab.up(["pg"], progress=lambda _m: None)
        wait_until("the store-back page", lambda: any(
            "Vigil 监控恢复" in t for t in webhook.titles()), timeout=120)
        wait_until("the spool merged", lambda: not list((tmp_path / "spool").glob("*.jsonl")),
                   timeout=60)
        opened = w.store().events(kind="incident.opened")
        systems = [e.subject.rsplit(".", 2)[0] for e in opened]
        assert "payment-db" in systems and len(systems) == len(set(systems)), systems
        onset = dt.datetime.fromisoformat(w.store().get_state(
            f"incident:{next(e.subject for e in opened if e.subject.startswith('payment-db.'))}"
        )["onset"])
        assert onset < restarted  # seen while the store was away, not when it came back
        assert w.store().verify().ok
        # Both back on the store, one of them leading (whichever claimed first).
        wait_until("both daemons back", lambda: {
            m.name for m in lease.monitors(w.store())[0] if m.heartbeat_age_s < 3} == {
            w.name, late.name} and leader(w) in (w.name, late.name), timeout=60)
        assert w.stop() == 0 and late.stop() == 0
    finally:
        webhook.stop()
        smtp.stop()


REMEDY_S = 20  # the remedy's own length: longer than a takeover and the resume's wait


class Playbooks(threading.Thread):
    """Samples, every 50 ms, which daemons have the restart playbook running (the playbook,
    its workers or its lease guard), and notes any instant with two at once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.daemons: dict[int, str] = {}  # pid -> name, restarts included
        self.now: set[str] = set()
        self.seen: set[str] = set()
        self.overlaps: list[set[str]] = []
        self.done = threading.Event()
        self._owner: dict[int, str] = {}

    def _who(self, proc: psutil.Process) -> str | None:
        who = self._owner.get(proc.pid) or self._owner.get(proc.info["ppid"])
        if who is None:
            with contextlib.suppress(psutil.Error):
                who = next((self.daemons[p.pid] for p in proc.parents()
                            if p.pid in self.daemons), None)
        if who:
            self._owner[proc.pid] = who
        return who

    def run(self) -> None:
        while not self.done.wait(0.05):
            now = set()
            for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
                cmd = proc.info["cmdline"] or []
                if any(c.endswith("/ansible-playbook") for c in cmd) and \
                        any(c.endswith("restart-service.yml") for c in cmd):
                    who = self._who(proc)
                    if who:
                        now.add(who)
            self.now = now
            self.seen |= now
            if len(now) > 1:
                self.overlaps.append(now)


def test_a_remedy_under_way_when_its_leader_is_frozen_or_killed_never_runs_under_two_leaders(
        tmp_path: Path, watches: Callable[..., Watch], pg_store_url: str) -> None:
    """The voucher library's restart (P4.3.5(1)) made slow: the leader running it is frozen,
    then (the next time) killed. Its playbook stops before the new leader resumes the step,
    and the step ends verified by the checks that opened the incident."""
    witness = tmp_path / "remedy.log"  # lab-app1 shares this machine's filesystem
    site = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/site.yml").read_text())
    step = site["vigil_runbook"]["overrides"]["voucher_library.IV.restart-service"]["run"]
    step["vars"]["service_restart_command"] = (
        f"sh -c 'echo start $$ >> {witness}; sleep {REMEDY_S}; echo end $$ >> {witness}; "
        "{{ vigil_lab_dir }}/net/voucher-service restart'")
    a, b = (watches(tmp_path / n, limit="voucher-library*", store_url=pg_store_url,
                    site={"vigil_runbook": site["vigil_runbook"]}) for n in ("a", "b"))
    playbooks = Playbooks()
    net = lab.component("net")
    try:
        a.start()
        wait_until("a leads", lambda: leader(a) == a.name, timeout=60)
        b.start()
        wait_until("b stands by", stands_by(b), timeout=60)
        assert a.proc and b.proc
        playbooks.daemons.update({a.proc.pid: "a", b.proc.pid: "b"})
        playbooks.start()

        def remedied(incident_before: str | None) -> dict[str, Any]:
            def done() -> dict[str, Any] | None:
                return next((r for k, r in a.store().states("step:").items()
                             if k.endswith("/IV/restart-service") and
                             r["incident"] != incident_before and
                             r["status"] in steps.FINAL), None)
            wait_until("the restart step finished", lambda: done() is not None, timeout=240)
            rec = done()
            assert rec is not None
            return rec

        # Frozen while the restart runs.
        net.stop_voucher_service()  # type: ignore[attr-defined]
        wait_until("a runs the restart", lambda: "a" in playbooks.now, timeout=90)
        a.proc.send_signal(signal.SIGSTOP)
        first = remedied(None)
        assert playbooks.overlaps == [], playbooks.overlaps
        assert first["status"] == "succeeded" and first["attempts"] == 2, first
        assert "check(s) pass again" in first["last"]
        a.proc.send_signal(signal.SIGCONT)
        wait_until("a stands by again", stands_by(a), timeout=30)
        wait_until("the voucher library recovered", lambda: a.open_incidents() == [],
                   timeout=90)

        # Killed while the restart runs: on this machine the lease is taken at once.
        playbooks.seen.clear()
        net.stop_voucher_service()  # type: ignore[attr-defined]
        wait_until("b runs the restart", lambda: "b" in playbooks.now, timeout=90)
        b.kill()
        second = remedied(first["incident"])
        assert playbooks.overlaps == [], playbooks.overlaps
        assert playbooks.seen == {"a", "b"}
        assert second["status"] == "succeeded" and second["attempts"] == 2, second
        assert "check(s) pass again" in second["last"]
        interrupted = a.store().events(kind="step.interrupted")
        assert len(interrupted) == 2
        # On the target too: the stopped run's command died with its connection (ansible's
        # ssh gives it a terminal, hung up), so the restart ran once per incident, and
        # never two at once.
        lines = [line.split() for line in witness.read_text().splitlines()]
        ends = [pid for what, pid in lines if what == "end"]
        assert len(ends) == 2, lines
        for pid in ends:
            assert lines.index(["end", pid]) == lines.index(["start", pid]) + 1, lines
        assert a.stop() == 0
    finally:
        playbooks.done.set()


def test_a_daemon_pointed_at_a_database_that_does_not_exist_says_so_and_stops(
        lab_up: None) -> None:
    """Away is waited out; wrong is said at once, in one line."""
    run = subprocess.run(
        [sys.executable, "-m", "vigil", "watch", "--observe-only", "-i",
         str(ROOT / "inventory/demo")], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ,
             "VIGIL_STORE": "postgresql+psycopg://postgres@127.0.0.1:5433/vigil_no_such_db"})
    assert run.returncode == 3, run.stderr
    errors = [line for line in run.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and "vigil_no_such_db" in errors[0] and \
        "does not exist" in errors[0], run.stderr
