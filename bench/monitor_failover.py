"""Monitor failover on the real lab (needs `vigil lab up`, as root): two `vigil watch`
daemons at shipped defaults share a fresh database on the lab's PostgreSQL; the leader is
killed (SIGKILL), frozen (SIGSTOP) or cut off from the store (a firewall rule dropping its
packets), and at the same instant the voucher library stops. Measured: the time from the
fault to the first page the new leader delivers for that new incident.

    .venv/bin/python -m bench.monitor_failover [--runs 20] [--faults kill,freeze,cut]

Both daemons run the plan: the voucher library's restart (P4.3.5(1)) puts it back, each
restart noted on the target by the command itself; the incident recovers, the faulted
daemon is brought back (restarted, thawed, reconnected) and stands by, and the next run
begins, with whichever daemon leads then. At the end every page queued for the duty
officer must have reached the webhook (lost: must be 0), repeats are counted by key (at
least once: a kill between sending and recording repeats a page, under its key), and no
incident may have had its restart run twice (must be 0). Exits 1 when any run loses a
message, runs a restart twice or misses its page (`bench/truth.py`).

Both daemons run on one machine: a killed daemon's lease is taken at once (its pid is
seen gone). Across machines a kill is like a freeze: the 5 s lease runs out first.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.truth import Truth, add_arguments
from tests.conftest import ROOT
from tests.lab.watcher import Cut, Watch, leader, stands_by, wait_until
from tests.receivers import SmtpReceiver, WebhookReceiver
from vigil import lab

FAULTS = ("kill", "freeze", "cut")
GIDS = {"a": 4242, "b": 4243}  # each daemon its group: a cut takes one alone
PSQL = ["psql", "-h", "127.0.0.1", "-p", "5433", "-U", "postgres", "-AtX", "-c"]


@contextmanager
def store() -> Iterator[str]:
    name = f"vigil_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run([*PSQL, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5433/{name}"
    finally:
        subprocess.run([*PSQL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                       capture_output=True)


def site(witness: Path) -> dict[str, Any]:
    """The lab's plan, the voucher library's restart noting each restart on the target."""
    lab_site = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/site.yml").read_text())
    runbook = lab_site["vigil_runbook"]
    run = runbook["overrides"]["voucher_library.IV.restart-service"]["run"]
    run["vars"]["service_restart_command"] = (
        "sh -c '{{ vigil_lab_dir }}/net/voucher-service restart && echo restarted >> "
        f"{witness}'")
    return {"vigil_runbook": runbook}


class Bench:
    def __init__(self, tmp: Path, url: str) -> None:
        self.arrived: dict[str, float] = {}  # key -> first arrival (monotonic)
        def arrived(message: dict[str, Any]) -> None:
            self.arrived.setdefault(message.get("key") or "", time.monotonic())

        self.webhook = WebhookReceiver(on_post=arrived)
        self.webhook.start()
        self.smtp = SmtpReceiver().start()
        self.witness = tmp / "restarts.log"
        self.witness.touch()
        self.pair = {n: Watch(tmp / n, self.webhook, self.smtp, limit="voucher-library*",
                              store_url=url, site=site(self.witness)) for n in GIDS}
        self.net = lab.component("net")

    def duty_pages(self) -> set[str]:
        return {k for k in self.pair["a"].queued() if k.rsplit("/", 1)[-1].startswith("duty#")}

    def start(self, name: str) -> None:
        self.pair[name].start(group=GIDS[name])

    def leading(self) -> tuple[str, str]:
        for name, w in self.pair.items():
            if w.proc and w.proc.poll() is None and leader(w) == w.name:
                return name, next(n for n in self.pair if n != name)
        raise AssertionError("nobody leads")

    def run(self, fault: str) -> tuple[float, int]:
        """One fault: seconds to the new leader's first page, and restarts on the target."""
        name, other = self.leading()
        old, new = self.pair[name], self.pair[other]
        restarts = len(self.witness.read_text().splitlines())
        before = set(self.arrived)
        cut = Cut(GIDS[name])
        assert old.proc
        started = time.monotonic()
        if fault == "kill":
            old.kill()
        elif fault == "freeze":
            old.proc.send_signal(signal.SIGSTOP)
        else:
            cut.start()
        self.net.stop_voucher_service()  # type: ignore[attr-defined]
        try:
            wait_until("the new leader's page", lambda: any(
                k.startswith("voucher-library.") for k in set(self.arrived) - before),
                timeout=120)
            paged = min(t for k, t in self.arrived.items()
                        if k not in before and k.startswith("voucher-library."))
            assert leader(new) == new.name, f"the page did not come from {other}"
            wait_until("the incident recovered", lambda: new.open_incidents() == [] and
                       not new.store().states("pending:"), timeout=180)
        finally:
            if fault == "kill":
                self.start(name)
            elif fault == "freeze":
                old.proc.send_signal(signal.SIGCONT)
            cut.stop()
        wait_until(f"{name} stands by", stands_by(old), timeout=120)
        return paged - started, len(self.witness.read_text().splitlines()) - restarts

    def stop(self) -> None:
        for w in self.pair.values():
            if w.proc and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)
                w.stop()
        self.webhook.stop()
        self.smtp.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="runs per fault")
    ap.add_argument("--faults", default=",".join(FAULTS))
    add_arguments(ap)
    args = ap.parse_args()
    truth = Truth("monitor_failover", args.inject_mismatch)
    faults = args.faults.split(",")
    lab.up(progress=lambda _m: None)
    times: dict[str, list[float]] = {f: [] for f in faults}
    twice = {f: 0 for f in faults}
    keys: dict[str, set[str]] = {}  # the pages each fault's runs queued for the duty officer
    with store() as url, tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), url)
        try:
            bench.start("a")
            wait_until("a leads", lambda: leader(bench.pair["a"]) == bench.pair["a"].name)
            bench.start("b")
            wait_until("b stands by", stands_by(bench.pair["b"]))
            for fault in faults:
                before = bench.duty_pages()
                for i in range(args.runs):
                    took, restarts = bench.run(fault)
                    times[fault].append(took)
                    twice[fault] += restarts > 1
                    print(f"{fault} {i + 1}/{args.runs}: page after {took:.1f} s, "
                          f"{restarts} restart(s)", file=sys.stderr, flush=True)
                keys[fault] = bench.duty_pages() - before
            queued = bench.duty_pages()
            wait_until("every page delivered", lambda: queued <= set(bench.webhook.keys()),
                       timeout=120)
        except AssertionError as exc:
            print(f"monitor_failover: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.stop()
        got = bench.webhook.keys()
    print("| fault | runs | page after: median | worst | pages | lost | repeated (same key) "
          "| restarts run twice |")
    print("|---|---|---|---|---|---|---|---|")
    for fault in faults:
        t, mine = times[fault], keys[fault]
        lost = mine - set(got)
        repeats = sum(got[k] - 1 for k in mine if got[k] > 1)
        truth.expect(f"{fault}: runs that paged", args.runs, len(t))
        truth.expect(f"{fault}: pages lost", 0, len(lost))
        truth.expect(f"{fault}: restarts run twice", 0, twice[fault])
        print(f"| {fault} | {len(t)} | {statistics.median(t):.1f} s | {max(t):.1f} s | "
              f"{len(mine)} | {len(lost)} | {repeats} | {twice[fault]} |")
    truth.done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
