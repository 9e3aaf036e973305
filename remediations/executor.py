"""The executor: when an incident reaches a level or recovers, its runbook steps start.

Auto steps (and approved steps that run something) go through ansible-runner in a worker
thread, after a native first aid where the runbook gives one (`first_aid.py`), one run
at a time per lock, with a timeout, in check mode on `--dry-run`, never when the site
observes only. A run counts only when verified afterwards (the incident's
checks pass again, or the playbook verified itself); a step gets `attempts` tries, then
people are told and Vigil stops trying. Records and events are committed before anything
runs, so a crash at any instant loses no step: a run cut off by a crash is retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from vigil import clock, keys
from vigil.alerting.incidents import Incident, incident_from, load_incident, system_of
from vigil.checks.cycle import run_checks
from vigil.domain import FaultClass, Level
from vigil.model import CheckSpec, Inventory
from vigil.paths import project_dir
from vigil.remediations import first_aid, routines, steps
from vigil.remediations.playbook_run import Outcome, PlaybookRunner, run_playbook
from vigil.remediations.steps import StepRecord
from vigil.result import Result, Status
from vigil.runbook import Run, Runbook, Step
from vigil.store import Fenced, Store

log = logging.getLogger("vigil.executor")

RETRY_AFTER_S = 30.0
# A recovery older than this (a store from before the executor) gets no recovery steps.
STALE = dt.timedelta(hours=1)
WATCHED = ("incident.level", "incident.recovered")
ROUTINES_EVERY = dt.timedelta(minutes=1)
Verifier = Callable[[list[CheckSpec]], list[Result]]
FirstAid = Callable[[str, Inventory, Mapping[str, Any]], first_aid.Aid]


def _refuse_to_run(run: Run, *_: Any) -> Outcome:
    raise RuntimeError(f"observe-only: {run.playbook} is not run")


class Executor:
    def __init__(self, inv: Inventory, store: Store, *, dry_run: bool = False,
                 observe_only: bool | None = None, runner: PlaybookRunner | None = None,
                 project: Path | None = None,
                 verifier: Verifier = run_checks, runbook: Runbook | None = None,
                 now: Callable[[], dt.datetime] = clock.now,
                 aid: FirstAid = first_aid.give, resume_after_s: float = 0,
                 lease_deadline: Path | None = None) -> None:
        self.inv, self.store, self.dry_run, self.now = inv, store, dry_run, now
        # Set when this daemon stops leading: its playbook runs are cancelled.
        self.cancelled = threading.Event()
        self.observe_only = inv.runbook.observe_only if observe_only is None else observe_only
        self.runbook = runbook or inv.site_runbook
        # The playbooks run from the site's Ansible project (vigil.paths: one setting).
        self.runner = runner or (_refuse_to_run if self.observe_only else
                                 partial(run_playbook, project=project or project_dir(),
                                         cancelled=self.cancelled,
                                         lease_deadline=lease_deadline))
        self.verifier, self.aid = verifier, aid
        self.checks = {c.name: c for c in inv.checks}
        self.workers: dict[str, threading.Thread] = {}
        self.locks: dict[str, str] = {}  # lock -> step key
        self.mutex = threading.Lock()
        self.active: dict[str, StepRecord] = {}  # step records not yet final
        # Systems whose automatic steps wait: a maintenance window (alerting.silences).
        self.held: set[str] = set()
        # Systems whose pages are held (a Vigil window or a Zabbix maintenance): the plan's
        # notices and approval requests wait for the silence's end.
        self.quiet: set[str] = set()
        # Systems a drill is healing: their automatic steps wait, but those after recovery
        # (they finish the healing: resume sending, fail back).
        self.healing: set[str] = set()
        self._routines_at: dt.datetime | None = None  # when routines were last looked at
        self.seen_seq = 0  # step records changed from this event seq on are read again
        self._resume(resume_after_s)

    # --- after a restart --------------------------------------------------------------

    def _resume(self, after_s: float) -> None:
        """A run that was going when the daemon died is retried (the roles are idempotent);
        after `after_s` when the leader before may still be cancelling it."""
        not_before = self.now() + dt.timedelta(seconds=after_s)
        with self.store.transaction() as tx:
            for key, value in tx.states(keys.STEP).items():
                rec = steps.step_from(key, value)
                if rec["status"] == "running":
                    rec["status"] = "pending"
                    rec["not_before"] = max(dt.datetime.fromisoformat(rec["not_before"]),
                                            not_before).isoformat()
                    tx.append("step.interrupted", rec["key"], {"incident": rec["incident"],
                                                               "attempt": rec["attempts"]})
                    tx.set_state(keys.step(rec['key']), rec)

    # --- the daemon's tick ---------------------------------------------------------------

    def tick(self, now: dt.datetime) -> None:
        self.plan(now)
        self.advance(now)
        if self._routines_at is None or now - self._routines_at >= ROUTINES_EVERY:
            self._routines_at = now
            if routines.due(self.store, self.inv, now):
                with self.store.transaction() as tx:
                    routines.tick(tx, self.inv, now)

    def plan(self, now: dt.datetime) -> None:
        """Plan the steps of what the tracker did since the last look (a cursor in the store,
        moved in the same transaction as the plans)."""
        with self.store.transaction() as tx:
            cursor = tx.get_state(keys.EXECUTOR_CURSOR) or 0
        events = [e for kind in WATCHED for e in self.store.events(kind=kind, after=cursor)]
        if not events:
            return
        with self.store.transaction() as tx:
            for e in sorted(events, key=lambda e: e.seq):
                value = tx.get_state(keys.incident(e.subject))
                inc = incident_from(keys.incident(e.subject), value) if value else None
                if inc is None or inc.get("cause"):
                    continue  # a consequence: its cause's steps are the remedy
                if e.kind == "incident.level" and inc["status"] == "open":
                    levels = [lv.value for lv in Level(e.data["mark"]).up_to]
                elif e.kind == "incident.recovered" and inc.get("mark") and \
                        now - dt.datetime.fromisoformat(inc["recovered_at"]) < STALE:
                    levels = ["recovery"]
                else:
                    continue
                steps.plan(tx, self.inv, self.runbook, inc, levels, now,
                           quiet=inc["system"] in self.quiet,
                           observe_only=self.observe_only)
            tx.set_state(keys.EXECUTOR_CURSOR, max(e.seq for e in events))

    def advance(self, now: dt.datetime) -> None:
        # Only steps still under way, kept across ticks: a long history costs nothing.
        # What changed since the last look (new plans, `vigil approve` from another
        # process, our own runs) is read again.
        changed, self.seen_seq = self.store.changed_states(keys.STEP, self.seen_seq)
        self.active.update(changed)
        for key in [k for k, r in self.active.items() if r["status"] in steps.FINAL]:
            del self.active[key]
        for key, rec in list(self.active.items()):
            if rec.get("held") and system_of(rec["incident"]) not in self.quiet:
                with self.store.transaction() as tx:
                    steps.release(tx, self.inv, self.runbook, tx.get_state(key), now)
                continue
            if rec["status"] in steps.DECIDING:
                if now >= dt.datetime.fromisoformat(rec["expires_at"]):  # else no write lock
                    with self.store.transaction() as tx:  # as committed, not as read above
                        steps.expire(tx, self.inv, self.runbook, tx.get_state(key), now)
            elif rec["status"] == "pending" and rec["level"] != "recovery" and \
                    self._recovered(rec):
                with self.store.transaction() as tx:
                    if (fresh := tx.get_state(key)) and fresh["status"] == "pending":
                        steps.skip_moot(tx, fresh)
            elif rec["status"] == "pending" and now >= dt.datetime.fromisoformat(
                    rec["not_before"]) and not self._waits(rec):
                self._start(key.removeprefix(keys.STEP), rec, now)

    def _recovered(self, rec: StepRecord) -> bool:
        inc = load_incident(self.store, rec["incident"])
        return bool(inc and inc["status"] == "recovered")

    def _waits(self, rec: StepRecord) -> bool:
        system = system_of(rec["incident"])
        return system in self.held or (system in self.healing and rec["level"] != "recovery")

    def cancel(self) -> None:
        """This daemon no longer leads: stop its playbook runs (their records are the new
        leader's to resume; any write of theirs is fenced off)."""
        self.cancelled.set()

    def wait(self, timeout: float | None = None) -> None:
        for t in list(self.workers.values()):
            t.join(timeout)

    # --- one run ---------------------------------------------------------------------------

    def _start(self, key: str, rec: StepRecord, now: dt.datetime) -> None:
        step = self.runbook.step(FaultClass(rec["fault_class"]), rec["level"], rec["step"])
        if step is None or step.run is None:
            return
        lock = step.run.lock or step.run.playbook
        with self.mutex:
            worker = self.workers.get(key)
            if (worker and worker.is_alive()) or self.locks.get(lock, key) != key:
                return  # running, or another step holds the target
            self.locks[lock] = key
        inc = load_incident(self.store, rec["incident"]) or {"id": rec["incident"],
                                                                     "checks": []}
        with self.store.transaction() as tx:
            rec = tx.get_state(keys.step(key))
            rec["status"], rec["attempts"] = "running", rec["attempts"] + 1
            tx.append("step.run.started", key, {
                "incident": rec["incident"], "clause": rec["clause"], "attempt": rec["attempts"],
                "playbook": step.run.playbook, "check_mode": self.dry_run})
            tx.set_state(keys.step(key), rec)
        worker = threading.Thread(target=self._run, args=(key, step, rec, inc, lock),
                                  name=f"step {key}", daemon=True)
        self.workers[key] = worker
        worker.start()

    def _run(self, key: str, step: Step, rec: StepRecord, inc: Incident,
             lock: str) -> None:
        try:
            self._attempt(key, step, rec, inc)
        except Fenced:  # this daemon lost the lease mid-run: the new leader resumes it
            log.info("step left to the new leader", extra={"step": key})
        finally:
            with self.mutex:
                self.locks.pop(lock, None)

    def _attempt(self, key: str, step: Step, rec: StepRecord, inc: Incident) -> None:
        assert step.run is not None
        ident = f"{key.replace('/', '_')}_{rec['attempts']}"

        def on_task(item: dict[str, Any]) -> None:
            self.store.append("step.run.task", key, {"incident": rec["incident"], **item})

        run = step.run
        if run.first_aid and not self.dry_run:
            handed = self._first_aid(key, run, rec)
            if handed:  # what the first aid saw, for the playbook to hold to as well
                run = run.model_copy(update={"vars": {**run.vars, **handed}})
        try:
            outcome = self.runner(run, self.inv.path, ident, self.dry_run, step.timeout_s,
                                  on_task)
        except Exception as exc:  # a runner crash is a failed attempt, not a dead daemon
            outcome = Outcome(status="error", rc=None, failed_tasks=[f"{type(exc).__name__}: "
                                                                     f"{exc}"])
        if self.cancelled.is_set():
            return  # cancelled because this daemon no longer leads: nothing to record
        verified, why = self._verify(step, inc, outcome)
        self._finish(key, step, inc, outcome, verified, why)

    def _first_aid(self, key: str, run: Run, rec: StepRecord) -> Mapping[str, Any]:
        """Gives the step's first aid, records it; returns the variables it hands on."""
        assert run.first_aid
        try:
            aid = self.aid(run.first_aid, self.inv, run.vars)
        except Exception as exc:  # the playbook still runs: first aid is only a head start
            aid = first_aid.Aid(False, f"{type(exc).__name__}: {exc}")
        self.store.append("step.first_aid", key, {
            "incident": rec["incident"], "clause": rec["clause"], "aid": run.first_aid,
            "done": aid.done, "why": aid.why, **({"vars": dict(aid.vars)} if aid.vars else {})})
        log.info("first aid", extra={"step": key, "done": aid.done, "why": aid.why})
        return aid.vars

    def _verify(self, step: Step, inc: Incident, outcome: Outcome) -> tuple[bool, str]:
        if not outcome.ok:
            detail = "; ".join(outcome.failed_tasks) or f"rc {outcome.rc}"
            return False, f"playbook {outcome.status}: {detail}"
        if self.dry_run or step.verify == "playbook":
            return True, "verified by the playbook" if not self.dry_run else "check mode"
        names = {Result.check_of(k) for k in inc.get("checks", [])}
        specs = [self.checks[n] for n in sorted(names) if n in self.checks]
        if not specs:
            return True, "no check to re-run"
        failing = [r for r in self.verifier(specs) if r.status in (Status.CRITICAL,
                                                                   Status.UNKNOWN)]
        if failing:
            return False, "still failing: " + "; ".join(f"{r.check}: {r.message}"
                                                        for r in failing)
        return True, f"{len(specs)} check(s) pass again"

    def _finish(self, key: str, step: Step, inc: Incident, outcome: Outcome,
                verified: bool, why: str) -> None:
        now = self.now()
        with self.store.transaction() as tx:
            rec = tx.get_state(keys.step(key))
            tx.append("step.run.finished", key, {
                "incident": rec["incident"], "attempt": rec["attempts"],
                "status": outcome.status, "rc": outcome.rc, "changed": outcome.changed,
                "verified": verified, "why": why})
            if self.dry_run:
                rec["status"] = "dry-run"
            elif verified:
                rec["status"] = "succeeded"
                tx.append("step.succeeded", key, {"incident": rec["incident"],
                                                  "clause": rec["clause"], "why": why})
            elif rec["attempts"] < step.attempts:
                rec["status"] = "pending"
                rec["not_before"] = (now + dt.timedelta(seconds=RETRY_AFTER_S *
                                                        rec["attempts"])).isoformat()
            else:
                rec["status"] = "failed"
                tx.append("step.failed", key, {"incident": rec["incident"],
                                               "attempts": rec["attempts"], "why": why})
                steps.escalate(tx, self.inv, step, rec, inc, now, why)
            rec["last"] = why
            tx.set_state(keys.step(key), rec)
        log.info("step finished", extra={"step": key, "status": rec["status"], "why": why})
