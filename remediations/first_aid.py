"""First aid: a native action taken before a step's playbook, where seconds matter.

P4.3.2 says to start the standby database *at once*. Ansible spends seconds starting up
and a few tenths of a second a task, so `promote-standby` promotes the standby from
here, in well under a second, when (and only when) it is provably safe without fencing:
the old primary's host answers and refuses connections on the database port (nothing
listens there: the postmaster is gone) and the standby is in recovery with its replay
caught up. Anything else — the old primary still answering, its host silent (a
partition: it may be alive behind it), a standby that lags — is left to the playbook,
which fences over SSH before promoting. The playbook always runs afterwards and finishes
the job: it fences the old primary's data directory, records it for the rebuild,
repoints clients and verifies a write.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.errors import first_line
from vigil.model import Inventory

MAX_REPLAY_GAP = 16 * 1024 * 1024  # bytes received but not replayed; the role's default
REFUSED = (errno.ECONNREFUSED,)


@dataclass(frozen=True)
class Aid:
    done: bool  # True: the first aid acted; False: left to the playbook
    why: str


def give(name: str, inv: Inventory, run_vars: Mapping[str, Any]) -> Aid:
    if name == "promote-standby":
        return promote_standby(inv, run_vars)
    return Aid(False, f"unknown first aid {name!r}")


def promote_standby(inv: Inventory, run_vars: Mapping[str, Any]) -> Aid:
    # The same hosts db-failover.yml takes: its variables, else the pair's groups.
    names = tuple(run_vars.get(f"db_failover_{role}") or _only_member(inv, f"vigil_db_{role}")
                  for role in ("primary", "standby"))
    hosts = [inv.hosts.get(n) for n in names]
    if not all(h and h.pg_port for h in hosts):
        return Aid(False, f"no vigil_pg_port for {' / '.join(names)} in the inventory")
    primary, standby = hosts
    assert primary and standby and primary.pg_port and standby.pg_port
    refused, seen = _refuses(primary.address, primary.pg_port)
    if not refused:
        return Aid(False, f"old primary {primary.name}: {seen}; fencing first (playbook)")
    import psycopg

    dsn = f"host={standby.address} port={standby.pg_port} dbname=postgres connect_timeout=2"
    try:
        with psycopg.connect(dsn, user=run_vars.get("standby_activation_db_user", "postgres"),
                             autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                "coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                "pg_last_wal_replay_lsn()), 0)").fetchone()
            assert row is not None
            in_recovery, replayed, gap = row
            if not in_recovery:
                return Aid(False, f"{standby.name} is already a primary")
            if replayed is None or gap > MAX_REPLAY_GAP:
                return Aid(False, f"{standby.name}: replay at {replayed}, {gap} bytes not "
                                  "replayed; left to the playbook")
            promoted = conn.execute("SELECT pg_promote(wait => true, wait_seconds => 30)"
                                    ).fetchone()
    except psycopg.Error as exc:
        return Aid(False, f"{standby.name}: {first_line(str(exc), type(exc).__name__)}")
    if not promoted or not promoted[0]:
        return Aid(False, f"{standby.name}: promotion did not finish in 30 s")
    return Aid(True, f"{standby.name} promoted at replay position {replayed}: "
                     f"{primary.name} refused connections on port {primary.pg_port}")


def _only_member(inv: Inventory, group: str) -> str:
    members = [h.name for h in inv.hosts.values() if group in h.groups]
    return members[0] if len(members) == 1 else f"(group {group}: {len(members)} hosts)"


def _refuses(address: str, port: int) -> tuple[bool, str]:
    """Whether the host answers and refuses the port (a reset, not a silence)."""
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return False, "still accepts connections"
    except OSError as exc:
        if exc.errno in REFUSED:
            return True, "refuses connections"
        return False, f"does not answer ({exc.strerror or type(exc).__name__})"
