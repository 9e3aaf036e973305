"""First aid: a native action taken before a step's playbook, where seconds matter.

P4.3.2 says to start the standby database *at once*. Ansible spends seconds starting up
and a few tenths of a second a task, so `promote-standby` promotes the standby from
here when (and only when) the old primary certainly takes no more writes:
- its host answers and refuses connections on the database port (nothing listens: the
  postmaster is gone), or
- it does not answer the monitoring server (dead, hung, powered off, or cut off while
  clients elsewhere may still reach it), or answers but cannot write because its disk is
  full, and its BMC, through the host's fence device (`vigil_fence`, `fence.py`), powered
  it off and confirms OFF; or, without a BMC, neither the monitoring server nor the
  standby's self-fence has heard it for the limit and margin of the self-fence that
  stops a primary cut off from both (`self_fence.py`, `roles/db_self_fence`); or,
  without a BMC, hung (its port accepts and nothing answers, or its host answers and its
  port does not) or its disk full, its own self-fence killed it on our signed order and
  its port now refuses.
The monitoring server is the witness: a primary that answers it and can write is never
failed over, and a standby that is not caught up is never promoted (nor its primary
powered off): not with WAL received but not replayed, nor further behind the last
position the dbpair check saw the primary write than `standby_activation_max_lag_bytes`
(what the site accepts to lose with asynchronous replication; that position is handed
to the playbook too). Anything else is left to the playbook, which fences over SSH or by
hand before promoting. The playbook always runs afterwards and finishes the job: it fences the old
primary's data directory, records it for the rebuild, repoints clients and verifies a
write.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vigil.checks import dbpair
from vigil.errors import first_line
from vigil.model import Host, Inventory
from vigil.remediations import fence, self_fence

MAX_REPLAY_GAP = 16 * 1024 * 1024  # bytes received but not replayed; the role's default
MAX_LAG = 1024 * 1024  # bytes a failover may lose; the role's default (Patroni's too)
REFUSED = (errno.ECONNREFUSED,)
ACCEPTS = "still accepts connections"  # a silent port is not asked again: it cannot answer


@dataclass(frozen=True)
class Aid:
    done: bool  # True: the first aid acted; False: left to the playbook
    why: str
    vars: Mapping[str, Any] = field(default_factory=dict)  # for the playbook that follows


@dataclass(frozen=True)
class Lag:
    """How far behind the old primary a standby may be to be promoted."""
    primary: str
    seen: int  # bytes of WAL the monitoring server last saw the old primary write
    limit: int  # the most the site accepts to lose


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
    written = dbpair.last_written(primary.address, primary.pg_port)
    if written is None:
        return _decide(primary, standby, run_vars, None)
    lag = Lag(primary.name, written,
              int(run_vars.get("standby_activation_max_lag_bytes", MAX_LAG)))
    aid = _decide(primary, standby, run_vars, lag)
    return replace(aid, vars={**aid.vars, "standby_activation_seen_wal_bytes": written})


def _decide(primary: Host, standby: Host, run_vars: Mapping[str, Any], lag: Lag | None
            ) -> Aid:
    assert primary.pg_port and standby.pg_port
    user = str(run_vars.get("standby_activation_db_user", "postgres"))
    refused, seen = _refuses(primary.address, primary.pg_port)
    if refused:
        return _promote(standby, user, f"{primary.name} refused connections on port "
                                       f"{primary.pg_port}", lag)
    # Not refused: it may be alive. The monitoring server is the witness; a primary that
    # answers it and can write is not failed over, whatever else is wrong (the standby,
    # replication). One that cannot write for a full disk is failed, but it still answers
    # clients and would take writes again once space is freed: it is fenced like the rest.
    role, full = _role(primary.address, primary.pg_port, user) if seen == ACCEPTS else (None, "")
    if full:
        seen = f"cannot write, its disk is full ({full})"
    elif role:
        return Aid(False, f"old primary {primary.name} answers as a {role}: no failover")
    if primary.fence is None:
        if primary.self_fence and standby.self_fence:
            return _after_self_fence(primary, standby, user, lag, seen, bool(full))
        return Aid(False, f"old primary {primary.name} {seen} and has no fence device "
                          "(vigil_fence) nor self-fences (vigil_self_fence on both nodes): "
                          "left to the playbook")
    ready = _ready(standby.address, standby.pg_port, standby.name, user, lag)
    if ready:  # never power off a primary the standby cannot replace
        return Aid(False, ready)
    fenced = fence.power_off(primary.name, primary.fence)
    if not fenced.off:
        return Aid(False, f"{fenced.why}; not promoting")
    return _promote(standby, user, f"{primary.name} {seen}; {fenced.why} in {fenced.seconds} s",
                    lag)


def _after_self_fence(primary: Host, standby: Host, user: str, lag: Lag | None, seen: str,
                      full: bool) -> Aid:
    """No BMC: a primary whose host answers (hung, or its disk full) is killed by its own
    self-fence on our order; a silent one is promoted over once neither we nor the standby
    have heard it for its self-fence's limit and margin (`self_fence.py`)."""
    assert standby.pg_port and primary.pg_port
    ready = _ready(standby.address, standby.pg_port, standby.name, user, lag)
    if ready:
        return Aid(False, ready)
    # Hung (its port accepts, nothing answers) or its disk full: its self-fence hears its
    # peers and leaves it running.
    if full or seen == ACCEPTS:
        failed = seen if full else "accepts connections but does not answer (hung)"
        return _killed_then_promoted(primary, standby, user, lag,
                                     f"old primary {primary.name} {failed}")
    waited = self_fence.outlasted(primary, standby)
    if waited.host_answers:  # hung with its listen backlog full: its port silent, not its host
        role, full_now = _role(primary.address, primary.pg_port, user)
        if role and not full_now:  # a cut healed while we waited: it answers and can write
            return Aid(False, f"old primary {primary.name} answers as a {role} again: no "
                              "failover")
        return _killed_then_promoted(primary, standby, user, lag, f"old primary "
                                     f"{primary.name} {seen} while its host answers (hung)")
    if not waited.ok:
        return Aid(False, waited.why)
    promoted = _promote(standby, user, f"{primary.name} {seen}; {waited.why}", lag)
    # the playbook cannot reach the old primary to see it down: this is its proof
    return replace(promoted, vars={"standby_activation_self_fenced": True}) if promoted.done \
        else promoted


def _killed_then_promoted(primary: Host, standby: Host, user: str, lag: Lag | None,
                          failed: str) -> Aid:
    """Order the primary's self-fence to kill it, see its port refuse, promote."""
    assert primary.pg_port
    try:
        killed = self_fence.order_kill(primary)
    except (OSError, ValueError, LookupError) as exc:
        return Aid(False, f"{failed}; its self-fence could not be ordered to kill it "
                          f"({first_line(str(exc), type(exc).__name__)}): left to the playbook")
    if not killed.stopped:
        return Aid(False, f"{failed}; its self-fence: {killed.why}: left to the playbook")
    if not _refuses(primary.address, primary.pg_port)[0]:  # seen down by us, too
        return Aid(False, f"{failed}; its self-fence killed it, but its port does not refuse: "
                          "left to the playbook")
    return _promote(standby, user, f"{failed}; its self-fence {killed.why}", lag)


def _dsn(address: str, port: int, timeout: int = 2) -> str:
    return f"host={address} port={port} dbname=postgres connect_timeout={timeout}"


def takes_writes(host: Host, user: str = "postgres") -> bool:
    """Whether the host's PostgreSQL takes a write now (a transaction id is only given out
    by a primary), asked within 1 s."""
    import psycopg

    assert host.pg_port
    try:
        with psycopg.connect(_dsn(host.address, host.pg_port, timeout=1), user=user,
                             autocommit=True) as conn:
            conn.execute("SET statement_timeout = 1000")
            conn.execute("SELECT txid_current()")
        return True
    except psycopg.Error:
        return False


def _role(address: str, port: int, user: str) -> tuple[str | None, str]:
    """"primary" or "standby" if the node answers a query within 2 s, else None; and for
    a primary, why it cannot write a new block (its disk full), else ""."""
    import psycopg

    try:
        with psycopg.connect(_dsn(address, port), user=user, autocommit=True) as conn:
            conn.execute("SET statement_timeout = 2000")
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row and row[0]:
                return "standby", ""
            return "primary", dbpair.disk_full(conn)
    except psycopg.Error:
        return None, ""


_STATE_SQL = ("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
              "coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
              "pg_last_wal_replay_lsn()), 0), "
              "coalesce(pg_wal_lsn_diff(greatest(pg_last_wal_receive_lsn(), "
              "pg_last_wal_replay_lsn()), '0/0'), 0)::bigint")


def _ready(address: str, port: int, name: str, user: str, lag: Lag | None) -> str:
    """Empty when the standby can be promoted now; else why not."""
    import psycopg

    try:
        with psycopg.connect(_dsn(address, port), user=user, autocommit=True) as conn:
            row = conn.execute(_STATE_SQL).fetchone()
    except psycopg.Error as exc:
        return f"{name}: {first_line(str(exc), type(exc).__name__)}"
    assert row is not None
    in_recovery, replayed, gap, received = row
    if not in_recovery:
        return f"{name} is already a primary"
    if replayed is None or gap > MAX_REPLAY_GAP:
        return f"{name}: replay at {replayed}, {gap} bytes not replayed; left to the playbook"
    if lag and lag.seen - received > lag.limit:
        return (f"{name} has {lag.seen - received} bytes less WAL than the monitoring server "
                f"last saw {lag.primary} write (standby_activation_max_lag_bytes "
                f"{lag.limit}): promoting it would lose them")
    return ""


def _promote(standby: Host, user: str, why: str, lag: Lag | None) -> Aid:
    import psycopg

    assert standby.pg_port
    not_ready = _ready(standby.address, standby.pg_port, standby.name, user, lag)
    if not_ready:
        return Aid(False, not_ready)
    try:
        with psycopg.connect(_dsn(standby.address, standby.pg_port), user=user,
                             autocommit=True) as conn:
            replayed = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
            promoted = conn.execute("SELECT pg_promote(wait => true, wait_seconds => 30)"
                                    ).fetchone()
    except psycopg.Error as exc:
        return Aid(False, f"{standby.name}: {first_line(str(exc), type(exc).__name__)}")
    if not promoted or not promoted[0]:
        return Aid(False, f"{standby.name}: promotion did not finish in 30 s")
    return Aid(True, f"{standby.name} promoted at replay position "
                     f"{replayed[0] if replayed else '?'}: {why}")


def _only_member(inv: Inventory, group: str) -> str:
    members = [h.name for h in inv.hosts.values() if group in h.groups]
    return members[0] if len(members) == 1 else f"(group {group}: {len(members)} hosts)"


def _refuses(address: str, port: int) -> tuple[bool, str]:
    """Whether the host answers and refuses the port (a reset, not a silence)."""
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return False, ACCEPTS
    except OSError as exc:
        if exc.errno in REFUSED:
            return True, "refuses connections"
        return False, f"does not answer ({exc.strerror or type(exc).__name__})"
