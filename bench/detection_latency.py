"""Detection-to-delivery latency on the real lab (needs `vigil lab up`, as root).

    python -m bench.detection_latency [--trials 20] [--interval 2]

Runs `vigil watch` on the lab's voucher library with a real webhook receiver, then
`trials` times: stops the voucher service, measures until the receiver holds the page,
restores the service and waits for the recovery. Reports p50 / p95 against the check
interval (the target: p95 within one interval plus 2 s, with open_after 1). Exits 1 unless
the receiver holds exactly one page and one recovery per fault. The same
run with open_after 2, the default, adds one interval by design (a single bad sample
does not page).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.truth import Truth, add_arguments
from tests.conftest import ROOT
from tests.receivers import WebhookReceiver
from vigil import lab
from vigil.lab.procs import wait_for
from vigil.store import Store

SYSTEM = "电子凭证库"  # the voucher library, as its page and recovery titles name it
RECOVERED = "已恢复"


def pages(titles: list[str]) -> int:
    return sum(1 for t in titles if SYSTEM in t and RECOVERED not in t)


def recoveries(titles: list[str]) -> int:
    return sum(1 for t in titles if RECOVERED in t)


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise SystemExit(f"vigil watch exited {proc.returncode}")
    return True


def trial_run(interval: float, open_after: int, trials: int,
              truth: Truth) -> list[float]:
    webhook = WebhookReceiver().start()
    with tempfile.TemporaryDirectory() as tmp:
        inv = Path(tmp) / "inv"
        shutil.copytree(ROOT / "inventory/lab", inv)
        (inv / "group_vars/all/zz-bench.yml").write_text(yaml.safe_dump({
            "vigil_lab_dir": str(lab.lab_dir()),
            "vigil_check_defaults": {"interval": interval, "timeout": 3},
            # Faults injected every few seconds are flapping by design; the flap guard
            # (tested elsewhere) would hold the incident open, so it is widened here.
            "vigil_escalation": {"open_after": open_after, "recover_after": 1,
                                 "flap_window": 50, "flap_changes": 50},
            "vigil_contacts": [{"id": "duty", "name": "duty", "party": "finance",
                                "roles": ["implementation_team"],
                                "channels": [webhook.url]},
                               # the lab's systems name their vendor as owner; told nothing
                               {"id": "lab-vendor", "name": "vendor", "party": "vendor",
                                "roles": ["vendor"]}]}))
        store = Path(tmp) / "bench.db"
        env = {**os.environ, "VIGIL_STORE": str(store)}
        proc = subprocess.Popen([sys.executable, "-m", "vigil", "watch", "--inventory",
                                 str(inv), "--limit", "voucher-library.health",
                                 "--observe-only"], cwd=ROOT,  # detection only: no restarts
                                env=env, stderr=subprocess.DEVNULL)
        net = lab.component("net")
        rng = random.Random(7)
        latencies = []
        try:
            wait_for(lambda: _alive(proc) and store.exists() and any(
                v.get("status") == "ok" for v in Store(str(store)).states("check:").values()),
                "vigil watch seeing the voucher library healthy", timeout=60)
            for _ in range(trials):
                seen = pages(webhook.titles())
                started = time.monotonic()  # the clock runs from the moment of the fault
                net.stop_voucher_service()  # type: ignore[attr-defined]
                while pages(webhook.titles()) == seen:
                    time.sleep(0.02)
                    if time.monotonic() - started > 60:
                        raise SystemExit("no page within 60 s")
                latencies.append(time.monotonic() - started)
                recovered = recoveries(webhook.titles())
                net.up()
                deadline = time.monotonic() + 60
                while recoveries(webhook.titles()) == recovered:
                    time.sleep(0.05)
                    if time.monotonic() > deadline:
                        raise SystemExit("no recovery message within 60 s")
                time.sleep(rng.uniform(0, interval))  # faults at any phase of the schedule
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            webhook.stop()
        # every fault paged once and recovered once: no page lost, none sent twice
        titles = webhook.titles()
        truth.expect(f"open_after={open_after}: pages received", trials, pages(titles))
        truth.expect(f"open_after={open_after}: recoveries received", trials,
                     recoveries(titles))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.0)
    add_arguments(parser)
    args = parser.parse_args()
    truth = Truth("detection_latency", args.inject_mismatch)
    for open_after in (1, 2):
        got = sorted(trial_run(args.interval, open_after, args.trials, truth))
        p50 = statistics.median(got)
        p95 = got[min(len(got) - 1, round(0.95 * (len(got) - 1)))]
        print(f"open_after={open_after}: {len(got)} trials, interval {args.interval:g} s: "
              f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {got[-1]:.2f} s "
              f"(target p95 <= {args.interval + 2:g} s for open_after=1)")
    truth.done()


if __name__ == "__main__":
    main()
