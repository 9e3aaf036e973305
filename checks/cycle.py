"""Run checks concurrently, each within its own timeout.

Probes that only wait on sockets (`AsyncProbe`: tcp, http) share one event loop, so a
cycle over thousands of endpoints needs no thread each. The others (SSH, database, OCSP)
run on threads; one that hangs (a half-open peer, a stuck SSH banner) is abandoned on a
daemon thread and reported `unknown`, never blocking the run or the process exit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.checks.base import AsyncProbe
from vigil.checks.registry import probe_for
from vigil.model import CheckSpec
from vigil.result import Result, Say, Status

# A probe gets its own timeout plus this grace to report a timeout itself.
GRACE_S = 1.0
ASYNC_CONCURRENCY = 256

OnResult = Callable[[Result], None]


@dataclass
class _Job:
    check: CheckSpec
    started: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Result | None = None  # written by the probe's thread
    result: Result | None = None  # written by the runner only: a late outcome is dropped


def _failed(check: CheckSpec, exc: BaseException) -> Result:
    what = f"{type(exc).__name__}: {exc}"
    return check.result(Status.UNKNOWN, Say(f"probe failed: {what}", f"检查程序出错：{what}"))


def _timed_out(check: CheckSpec, elapsed: float) -> Result:
    limit = f"{check.timeout_s:g}"
    result = check.result(Status.UNKNOWN, Say(f"no answer within {limit}s timeout",
                                              f"超时：{limit} 秒内无应答"))
    result.duration_s = round(elapsed, 4)
    return result


def run_one(check: CheckSpec) -> Result:
    """Run one probe in the calling thread; an exception becomes an `unknown` Result."""
    try:
        return probe_for(check.kind)(check)
    except Exception as exc:
        return _failed(check, exc)


def run_checks(checks: Sequence[CheckSpec], *, concurrency: int = 16,
               on_result: OnResult | None = None) -> list[Result]:
    """Results in the order of `checks`."""
    by_loop = [c for c in checks if isinstance(probe_for(c.kind), AsyncProbe)]
    by_thread = [c for c in checks if not isinstance(probe_for(c.kind), AsyncProbe)]
    done: dict[int, Result] = {}
    loop_thread = threading.Thread(
        target=lambda: done.update(zip(map(id, by_loop),
                                       _event_loop_run(_run_async(by_loop, on_result)),
                                       strict=True)),
        daemon=True, name="checks:async")
    loop_thread.start()
    for check, result in zip(by_thread, _run_threads(by_thread, concurrency, on_result),
                             strict=True):
        done[id(check)] = result
    loop_thread.join()
    return [done[id(c)] for c in checks]


def _event_loop_run(coro: Coroutine[Any, Any, list[Result]]) -> list[Result]:
    """uvloop where it is installed (several times faster for many small connections)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _run_async(checks: Sequence[CheckSpec], on_result: OnResult | None) -> list[Result]:
    gate = asyncio.Semaphore(ASYNC_CONCURRENCY)

    async def one(check: CheckSpec) -> Result:
        async with gate:
            probe = probe_for(check.kind)
            assert isinstance(probe, AsyncProbe)
            started = time.monotonic()
            try:
                # asyncio.timeout, unlike wait_for, needs no extra task per check.
                async with asyncio.timeout(check.timeout_s + GRACE_S):
                    result = await probe.acall(check)
            except TimeoutError:
                result = _timed_out(check, time.monotonic() - started)
            except Exception as exc:
                result = _failed(check, exc)
        if on_result:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(c) for c in checks)))


def _run_threads(checks: Sequence[CheckSpec], concurrency: int,
                 on_result: OnResult | None) -> list[Result]:
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
            if job.done.is_set():
                running.remove(job)
                assert job.outcome is not None
                finish(job, job.outcome)
            elif now >= job.started + job.check.timeout_s + GRACE_S:
                running.remove(job)
                finish(job, _timed_out(job.check, now - job.started))
        if running:
            next_deadline = min(j.started + j.check.timeout_s + GRACE_S for j in running)
            wake.wait(timeout=max(0.0, min(0.5, next_deadline - time.monotonic())))
    return [j.result for j in jobs if j.result is not None]
