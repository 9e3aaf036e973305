"""Two `vigil watch` daemons sharing the lab's PostgreSQL store: one leads; when it is frozen
(SIGSTOP) or killed, the other takes over within 10 s and pages about a fault that
happened meanwhile; the frozen one, thawed, writes nothing more and stands by."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.lab.watcher import Watch, wait_until
from tests.receivers import SmtpReceiver, WebhookReceiver
from vigil import lab, lease
from vigil.store import Store

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]

TAKEOVER_S = 10.0  # the target
KILLS = 50


def leader(w: Watch) -> str | None:
    held, now = lease.current(w.store())
    return held.holder if held and held.expires > now else None


def takeover(survivor: Watch, fault: Callable[[], None]) -> float:
    """Seconds from the fault to the survivor leading."""
    started = time.monotonic()
    fault()
    wait_until("the takeover", lambda: leader(survivor) == survivor.name, timeout=30)
    return time.monotonic() - started


def test_a_frozen_or_killed_leader_is_replaced_within_10_s(
        tmp_path: Path, watches: Callable[..., Watch], pg_store_url: str) -> None:
    webhook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    try:
        a, b = (watches(tmp_path / n, webhook, smtp, observe_only=True, store_url=pg_store_url)
                for n in ("a", "b"))
        a.start()
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
        wait_until("a stands by again", lambda: any(
            m.name == a.name and not m.leading and m.heartbeat_age_s < 3
            for m in lease.monitors(a.store())[0]), timeout=30)
        assert leader(b) == b.name
        assert b"no longer leading" in (tmp_path / "a/watch.log").read_bytes()
        # Thawed, a went on with the cycle it was in, on its old view: had its writes not
        # been fenced off, it would have opened the standby's incidents a second time.
        systems = [e.subject.rsplit(".", 2)[0] for e in b.store().events(kind="incident.opened")]
        assert systems and len(systems) == len(set(systems)), systems

        killed_s = takeover(a, b.kill)
        assert killed_s < TAKEOVER_S, f"takeover after kill -9 took {killed_s:.1f} s"
        epochs = [e.data["epoch"] for e in a.store().events(kind="monitor.leader")]
        assert epochs == [1, 2, 3]
        # Every page queued for the duty officer arrived, each key at most twice (at
        # least once: a leader stopped between sending and recording sends it again).
        duty = {k for k in a.queued() if k.rsplit("/", 1)[-1].startswith("duty#")}
        assert duty
        wait_until("every page at the webhook", lambda: duty <= set(webhook.keys()), timeout=60)
        assert max(webhook.keys().values()) <= 2
        print(f"takeover after SIGSTOP {frozen_s:.1f} s, after kill -9 {killed_s:.1f} s")
    finally:
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
        wait_until("90 s of outage", lambda: time.monotonic() - stopped >= 90, timeout=120)
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
        assert w.stop() == 0
    finally:
        webhook.stop()
        smtp.stop()
