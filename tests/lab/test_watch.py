"""`vigil watch` on the real lab: faults become incidents, incidents become messages at
real receivers, and a daemon killed at any instant loses nothing: every message arrives,
at least once, and once per idempotency key."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import OVERRIDE, ROOT
from tests.lab.watcher import LIMIT, Watch, wait_until
from tests.receivers import SmtpReceiver, WebhookReceiver
from vigil import lab

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, SmtpReceiver]]:
    webhook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    yield webhook, smtp
    webhook.stop()
    smtp.stop()


@pytest.fixture
def watch(tmp_path: Path, receivers: tuple[WebhookReceiver, SmtpReceiver],
          watches: Callable[..., Watch]) -> Watch:
    return watches(tmp_path, *receivers, observe_only=True)  # alerting only: no remediation


def test_fault_escalation_ack_and_recovery_reach_people(
        watch: Watch, receivers: tuple[WebhookReceiver, SmtpReceiver]) -> None:
    webhook, smtp = receivers
    watch.start()
    wait_until("daemon started", lambda: bool(watch.store().events(kind="daemon.started")))
    time.sleep(2)
    assert watch.open_incidents() == []

    lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
    wait_until("a level-IV page at the webhook",
               lambda: any("四级" in t and "支付系统数据库（主）" in t for t in webhook.titles()))
    (inc,) = [i for i in watch.open_incidents() if i["system"] == "payment-db"]
    page = next(m for m in webhook.received if f"vigil ack {inc['id']}" in m["message"])
    assert "四级" in page["title"] and "P4.3.2" in page["message"]
    assert "standby pg-b down" in page["message"] or "备库 pg-b 故障" in page["message"]
    assert smtp.messages == []  # the leadership group hears from level III on

    watch.jump(25)  # a day later: level III, the leadership group by email
    wait_until("level III email", lambda: any("三级" in m["subject"] for m in smtp.messages))
    run = subprocess.run([sys.executable, "-m", "vigil", "ack", inc["id"], "--as", "duty",
                          *OVERRIDE,
                          "--inventory", str(watch.inventory)], env=watch.env, cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

    lab.up(["pg"], progress=lambda _m: None)
    name = "支付系统数据库（主）"  # this incident's system; the standby port recovers apart
    wait_until("this incident's recovery, told to everyone who was told", lambda: (
        watch.store().get_state(f"incident:{inc['id']}")["status"] == "recovered"
        and any("已恢复" in t and name in t for t in webhook.titles())
        and any("已恢复" in m["subject"] and name in m["subject"] for m in smtp.messages)),
        timeout=90)
    assert watch.stop() == 0
    kinds = [e.kind for e in watch.store().events()
             if e.subject == inc["id"] or e.data.get("incident") == inc["id"]]
    for kind in ("incident.opened", "incident.level", "incident.acked", "incident.recovered",
                 "message.sent"):
        assert kind in kinds
    assert watch.store().verify().ok


def test_sigkill_at_random_moments_loses_nothing_and_each_key_counts_once(
        watch: Watch, receivers: tuple[WebhookReceiver, SmtpReceiver]) -> None:
    webhook, smtp = receivers
    rng = random.Random(20261128)
    pg = lab.component("pg")
    standby_down = False
    for i in range(20):
        lives = len(watch.store().events(kind="daemon.started"))
        watch.start()
        # killed at a random moment of its work, however long a busy machine takes to
        # start it (a kill during start-up: test_daemon_stop, and the next life's resume)
        wait_until(f"life {i} started", lambda n=lives: len(
            watch.store().events(kind="daemon.started")) > n, timeout=120)
        if i % 4 == 1:  # faults come and go while the daemon keeps dying
            if standby_down:
                lab.up(["pg"], progress=lambda _m: None)
            else:
                pg.stop_node("standby")  # type: ignore[attr-defined]
            standby_down = not standby_down
        if i == 10:
            watch.jump(25)
        time.sleep(rng.uniform(0.3, 2.5))
        watch.kill()
    if standby_down:
        lab.up(["pg"], progress=lambda _m: None)
    lives = len(watch.store().events(kind="daemon.started"))
    watch.start()  # the last life: let it settle
    # the store may say "all done" before this life has even begun: wait for it to run
    wait_until("the last life started", lambda: len(
        watch.store().events(kind="daemon.started")) > lives, timeout=120)
    wait_until("all incidents recovered and every message delivered", lambda: (
        watch.open_incidents() == [] and not watch.store().states("pending:")), timeout=120)
    assert watch.stop() == 0

    store = watch.store()
    assert store.verify().ok, "the hash chain survives every kill"
    opened = store.events(kind="incident.opened")
    assert opened, "the injected faults were seen"
    queued_hook = watch.queued("duty")
    queued_mail = watch.queued("leader")
    got_hook, got_mail = webhook.keys(), smtp.keys()
    assert queued_hook and set(got_hook) == queued_hook  # every message arrived; no stranger
    assert set(got_mail) == queued_mail
    # Effects are counted once per idempotency key: what a deduplicating receiver applies.
    assert len(set(got_hook)) == len(queued_hook)
    for e in store.events(kind="message.queued"):
        assert store.get_state(f"msg:{e.subject}")["status"] == "sent"
    levels = {e.subject: e.data["mark"] for e in store.events(kind="incident.level")}
    assert "III" in levels.values(), "the jumped clock escalated an incident to level III"


def test_webhook_down_messages_wait_and_the_failure_is_reported(
        watch: Watch, receivers: tuple[WebhookReceiver, SmtpReceiver]) -> None:
    webhook, _ = receivers
    port = webhook.port
    webhook.stop()
    watch.start()
    lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
    wait_until("channel failure reported", lambda: bool(
        watch.store().events(kind="channel.failing")), timeout=90)
    wait_until("fallback message delivered to the other implementation-team contact",
               lambda: watch.fallback.exists() and "渠道故障" in watch.fallback.read_text(),
               timeout=30)
    failures = watch.store().events(kind="message.failed")
    assert failures and all("json delivery failed" in e.data["error"] for e in failures)

    back = WebhookReceiver(port).start()
    try:
        wait_until("queued pages delivered once the receiver is back", lambda: (
            watch.queued("duty") and set(back.keys()) >= watch.queued("duty")), timeout=60)
    finally:
        back.stop()
    metrics = [json.loads(line) for line in
               (watch.store_path.parent / "watch.log").read_text().splitlines()
               if line.startswith("{")]
    assert any(m["msg"] == "delivery failed" for m in metrics), "failures are logged as JSON"


def test_status_and_metrics_while_watching(watch: Watch) -> None:
    from tests.receivers import free_port

    port = free_port()
    assert watch.proc is None
    watch.proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "watch", "--inventory", str(watch.inventory),
         "--limit", LIMIT, "--metrics-port", str(port)], cwd=ROOT, env=watch.env,
        stdout=watch.log, stderr=watch.log)
    lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
    wait_until("incidents open", lambda: len(watch.open_incidents()) >= 1)

    import urllib.request

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()

    wait_until("metrics show the incident", lambda: 'vigil_incidents_open{mark="IV"} 0.0'
               not in scrape())
    text = scrape()
    assert "vigil_check_runs_total" in text and "vigil_outbox_pending" in text
    run = subprocess.run([sys.executable, "-m", "vigil", "status", "--json", "--inventory",
                          str(watch.inventory)], env=watch.env, cwd=ROOT, capture_output=True,
                         text=True)
    status = json.loads(run.stdout)
    assert status["daemon_running"] is True
    assert {i["system"] for i in status["open_incidents"]} >= {"payment-db"}
    inc = status["open_incidents"][0]
    assert inc["mark"] == "IV" and inc["next_mark"] == "IV+"
    table = subprocess.run([sys.executable, "-m", "vigil", "status", "--inventory",
                            str(watch.inventory)], env={**watch.env, "COLUMNS": "200"},
                           cwd=ROOT, capture_output=True, text=True).stdout
    assert "守护进程运行中" in table and "四级" in table
    assert watch.stop() == 0
