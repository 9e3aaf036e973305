"""Reconcile 1,000,000 vouchers per party across three parties with 0.1 % discrepancies:
`vigil reconcile --all` (three separate voucher databases, each in its vendor's schema)
side by side with a full outer join of the same tables inside one PostgreSQL database.

    .venv/bin/python -m bench.reconcile_million [--vouchers 1000000]   # needs `vigil lab up`

Targets (issue 7): under 5 s end to end, within 2x of the in-database join, peak memory
under 300 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from tests.conftest import ROOT
from vigil.lab import vouchers

DAY = dt.date(2026, 11, 27)
JOINED = "vouchers_bench_joined"


def one_database() -> None:
    """Copy the three vendors' tables into one database, for the peer's join."""
    with psycopg.connect(vouchers.dsn("finance").replace("vouchers_finance", "postgres"),
                         autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{JOINED}"')
        admin.execute(f'CREATE DATABASE "{JOINED}"')
    target = vouchers.dsn("finance").replace("vouchers_finance", JOINED)
    for party, (_db, table, cols) in vouchers.SCHEMAS.items():
        with psycopg.connect(vouchers.dsn(party)) as src, psycopg.connect(target) as dst:
            dst.execute(f"CREATE TABLE {table} ({cols[0]} text PRIMARY KEY, {cols[1]} text, "
                        f"{cols[2]} date, {cols[3]} numeric(18,2), {cols[4]} text, "
                        f"{cols[5]} text, {cols[6]} boolean, {cols[7]} boolean, "
                        f"{cols[8]} boolean, {cols[9]} boolean)")
            with src.cursor().copy(f"COPY {table} TO STDOUT") as out, \
                    dst.cursor().copy(f"COPY {table} FROM STDIN") as into:
                for chunk in out:
                    into.write(chunk)
            dst.execute(f"ANALYZE {table}")


def joined() -> tuple[float, int]:
    """The peer: each party against finance, one full outer join each, in one database."""
    sql = []
    f = vouchers.SCHEMAS["finance"][2]
    for party in ("pboc", "bank-a"):
        _db, table, c = vouchers.SCHEMAS[party]
        sql.append(
            f"SELECT count(*) FROM pay_voucher f FULL OUTER JOIN {table} p "
            f"ON f.{f[0]} = p.{c[0]} WHERE f.{f[0]} IS NULL OR p.{c[0]} IS NULL "
            f"OR f.{f[3]} <> p.{c[3]} OR f.{f[1]} <> p.{c[1]} OR f.{f[4]} <> p.{c[4]} "
            f"OR f.{f[5]} <> p.{c[5]} OR (f.{f[7]} AND NOT p.{c[8]}) "
            f"OR (p.{c[8]} AND NOT p.{c[9]})")
    found = 0
    started = time.perf_counter()
    with psycopg.connect(vouchers.dsn("finance").replace("vouchers_finance", JOINED)) as conn:
        for q in sql:
            row = conn.execute(q).fetchone()
            found += row[0] if row else 0
    return time.perf_counter() - started, found


def vigil_reconcile(out: Path) -> tuple[float, int, float]:
    started = time.perf_counter()
    # GNU time reports the child's own peak (RUSAGE_CHILDREN would count this process's
    # generator too).
    run = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "vigil",
                          "reconcile", "--all", "--inventory",
                          "inventory/lab", "--date", DAY.isoformat(), "--out", str(out),
                          "--json"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "VIGIL_STORE": str(out / "s.db")})
    seconds = time.perf_counter() - started
    if run.returncode not in (0, 1):
        raise SystemExit(run.stderr)
    found = sum(sum(r["counts"].values()) for r in json.loads(run.stdout))
    peak_mb = int(run.stderr.strip().splitlines()[-1]) / 1024
    return seconds, found, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vouchers", type=int, default=1_000_000)
    args = parser.parse_args()
    each = max(1, args.vouchers // 1000 // 5)  # 0.1 %, spread over five kinds
    t0 = time.perf_counter()
    expected = vouchers.generate(args.vouchers, DAY, seed=1000, missing=each, extra=each,
                                 altered=each, not_received=each, no_receipt=each)
    one_database()
    print(f"generated {args.vouchers:,} vouchers x 3 parties in {time.perf_counter() - t0:.0f} s; "
          f"{sum(len(s) for s in expected.resend_to.values())} to resend from finance")
    with tempfile.TemporaryDirectory() as tmp:
        v_s, v_found, peak = vigil_reconcile(Path(tmp))
    j_s, j_found = joined()
    print("| run | time | discrepancies found | peak memory |")
    print("|---|---|---|---|")
    print(f"| vigil reconcile --all (3 databases, streamed) | {v_s:.2f} s | {v_found} | "
          f"{peak:.0f} MB |")
    print(f"| full outer joins in one database | {j_s:.2f} s | {j_found} | (server) |")
    print(f"ratio Vigil / in-database join: {v_s / j_s:.1f}x")


if __name__ == "__main__":
    main()
