"""`make bench-smoke`: every benchmark at a small size with its correctness checks, then
again with `--inject-mismatch`, which must make it exit 1 naming what is wrong. A
benchmark that cannot tell a wrong result from a right one fails here.

    .venv/bin/python -m bench.smoke        # the lab up (reconcile reads its databases); root
                                           # (the failover pair's network namespaces)
"""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT

SMALL = {
    "exchange_bundle": ["--vouchers", "2000"],
    "ladder_tick": ["--incidents", "1000"],
    "check_cycle": ["--targets", "100", "--rounds", "1"],
    "reconcile_million": ["--vouchers", "20000"],
    "console": ["--incidents", "500", "--events", "5000", "--requests", "5"],
    # Vigil at its shipped defaults without a BMC, with the self-fence (as inventory/county
    # ships it): the shapes no lab test makes (the lab's drill kills the primary): cut off,
    # promoted on the self-fence's word, the old primary's last write within its limit;
    # hung, killed by its self-fence on the monitoring server's signed order; a full disk,
    # stopped by the playbook. The full table, with its peers and every shape, is manual
    # (docs/benchmarks.md).
    "db_failover": ["--runs", "1", "--shapes", "cut,hang,disk", "--replication", "async",
                    "--only", "vigil-self-fence-only"],
    "detection_latency": ["--trials", "2", "--interval", "1"],
    "monitor_failover": ["--runs", "1", "--faults", "kill"],
    "zabbix_push": ["--values", "200", "--runs", "1", "--cycles", "5"],
}
# The run with a mismatch injected only has to fail: one shape of the pair is enough.
WRONG = {"db_failover": ["--runs", "1", "--shapes", "cut", "--replication", "async",
                         "--only", "vigil-self-fence-only"]}


def run(name: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def main() -> int:
    failed = []
    for name, args in SMALL.items():
        started = time.perf_counter()
        right = run(name, args)
        wrong = run(name, [*WRONG.get(name, args), "--inject-mismatch"])
        ok = right.returncode == 0 and wrong.returncode == 1 and \
            f"{name}: WRONG" in wrong.stderr
        print(f"{name}: {'ok' if ok else 'FAILED'} ({time.perf_counter() - started:.0f} s; "
              f"right run exit {right.returncode}, injected mismatch exit {wrong.returncode})")
        if not ok:
            failed.append(name)
            print(right.stdout[-2000:], right.stderr[-2000:], wrong.stderr[-1000:],
                  sep="\n", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
