"""Run checks concurrently, each within its own timeout.

A probe that hangs (a half-open TCP peer, a stuck SSH banner) is abandoned on a daemon
thread and reported `unknown`; it never blocks the run or the process exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from checks.base import CheckSpec
from checks.registry import probe_for
from checks.result import Result, Say, Status

# A probe gets its own timeout plus this grace to report a timeout itself.
GRACE_S = 1.0


@dataclass
class _Job:
    check: CheckSpec
    started: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Result | None = None  # written by the probe's thread
    result: Result | None = None  # written by the runner only: a late outcome is dropped


def run_one(check: CheckSpec) -> Result:
    """Run one probe in the calling thread; an exception becomes an `unknown` Result."""
    try:
        return probe_for(check.kind)(check)
    except Exception as exc:
        what = f"{type(exc).__name__}: {exc}"
        return check.result(Status.UNKNOWN, Say(f"probe failed: {what}", f"检查程序出错：{what}"))


def run_checks(checks: Sequence[CheckSpec], *, concurrency: int = 8,
               on_result: Callable[[Result], None] | None = None) -> list[Result]:
    jobs = [_Job(c) for c in checks]
    pending = list(reversed(jobs))
    running: list[_Job] = []
    wake = threading.Event()

    def work(job: _Job) -> None:
        job.outcome = run_one(job.check)
        job.done.set()
        wake.set()

    def finish(job: _Job, result: Result) -> None:
        job.result = result
        if on_result:
            on_result(result)

    while pending or running:
        while pending and len(running) < max(1, concurrency):
            job = pending.pop()
            job.started = time.monotonic()
            threading.Thread(target=work, args=(job,), daemon=True,
                             name=f"check:{job.check.name}").start()
            running.append(job)
        wake.clear()
        now = time.monotonic()
        for job in list(running):
            deadline = job.started + job.check.timeout_s + GRACE_S
            if job.done.is_set():
                running.remove(job)
                assert job.outcome is not None
                finish(job, job.outcome)
            elif now >= deadline:
                running.remove(job)
                limit = f"{job.check.timeout_s:g}"
                timed_out = job.check.result(Status.UNKNOWN, Say(
                    f"no answer within {limit}s timeout", f"超时：{limit} 秒内无应答"))
                timed_out.duration_s = round(now - job.started, 4)
                finish(job, timed_out)
        if running:
            next_deadline = min(j.started + j.check.timeout_s + GRACE_S for j in running)
            wake.wait(timeout=max(0.0, min(0.5, next_deadline - time.monotonic())))
    return [j.result for j in jobs if j.result is not None]
