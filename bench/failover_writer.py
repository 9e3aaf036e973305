"""A client of the database that keeps writing: one row at a time into `ledger`, printing
`ID TIME` for every commit the server acknowledged (TIME: wall clock when the ack came).

    ip netns exec vbf-c python -m bench.failover_writer "host=10.79.0.1 …" WRITER

Run in a namespace of its own, beside the database hosts, so a cut between the primary and
the monitoring server leaves it writing on the primary's side. It never gives up and has
no timeout of its own: a commit cancelled while it waits for a synchronous standby is
committed locally all the same, which would hide exactly the writes a split brain takes.
A failed attempt (an error, a lost connection) is not acknowledged; its id is not reused.
"""

from __future__ import annotations

import sys
import time

import psycopg


def main() -> None:
    dsn, writer = sys.argv[1], sys.argv[2]
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    n = first - 1
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while True:
                    n += 1
                    conn.execute("INSERT INTO ledger (id, writer) VALUES (%s, %s)", (n, writer))
                    print(n, f"{time.time():.6f}", flush=True)
                    time.sleep(0.01)
        except psycopg.Error:
            time.sleep(0.05)


if __name__ == "__main__":
    main()
