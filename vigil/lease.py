"""Who leads among the `vigil watch` daemons sharing a store.

A lease row in the store, not an advisory lock: a lock tied to a session dies with the
connection, so a leader cut off from PostgreSQL would keep acting on what it last knew
and learn nothing until its socket timed out; a lease has an expiry on the database's
clock that every daemon reads alike, and an epoch that grows at each change of hands. The
leader's Store carries (holder, epoch) as its fence: every transaction it opens checks the
lease under the chain head's lock (vigil.store.Tx), so a leader that was frozen or cut off
past its expiry has every write refused, even if nobody has taken over yet.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from vigil.store import Store, Tx, db_now, lease_row, lease_table, monitors_table

TTL_S = 5.0  # a leader silent this long loses the lease: takeover well within 10 s
RELEASED = ""  # the holder of a lease handed back at a clean stop


@dataclass(frozen=True)
class Lease:
    holder: str
    epoch: int
    since: str
    expires: str
    # Taken from a holder that did not hand over and may still be running (frozen, cut
    # off, or dead on another machine): its name, else "".
    taken_from: str = ""


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def node() -> str:
    """Where a pid means something: this machine's name and pid namespace (containers on
    one machine, or two machines with one name, must not judge each other's pids)."""
    try:
        space = os.readlink("/proc/self/ns/pid")
    except OSError:
        space = "?"
    return f"{socket.gethostname()}/{space}"


def _later(stamp: str, seconds: float) -> str:
    return (datetime.fromisoformat(stamp) + timedelta(seconds=seconds)).isoformat(
        timespec="microseconds")


def _gone(holder: str, where: str) -> bool:
    """A holder in this machine's pid namespace whose process is gone (a daemon restarted
    after a kill need not wait out its own old lease)."""
    pid = holder.rpartition(":")[2]
    if where != node() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def current(store: Store) -> tuple[Lease | None, str]:
    """The lease as it stands, and the database's time."""
    with store.engine.connect() as conn:
        row = lease_row(conn)
        now = db_now(conn)
    return (Lease(row.holder, row.epoch, row.since, row.expires) if row else None), now


def claim(store: Store, holder: str, ttl_s: float = TTL_S) -> Lease | None:
    """Take or renew the lease for `holder`; None while another live holder has it. A
    change of hands raises the epoch and is an event (`monitor.leader`)."""
    with store.transaction(fenced=False) as tx:
        row = lease_row(tx.conn)
        now = db_now(tx.conn)
        if row is not None and row.holder != holder and row.expires > now and \
                not _gone(row.holder, row.node):
            return None
        if row is not None and row.holder == holder:
            lease = Lease(holder, row.epoch, row.since, _later(now, ttl_s))
        else:
            silent = row is not None and row.holder != RELEASED and \
                not _gone(row.holder, row.node)
            lease = Lease(holder, (row.epoch if row else 0) + 1, now, _later(now, ttl_s),
                          taken_from=row.holder if silent and row else "")
            tx.append("monitor.leader", holder, {
                "epoch": lease.epoch, "previous": row.holder if row else None,
                "previous_expired": bool(row and row.expires <= now),
                "taken_from": lease.taken_from or None})
        _write(tx, lease, exists=row is not None)
    return lease


def release(store: Store, lease: Lease) -> None:
    """Hand the lease back at a clean stop, so a standby takes over at once (and knows
    it was handed over, not taken from a silent leader)."""
    with store.transaction(fenced=False) as tx:
        row = lease_row(tx.conn)
        if row is not None and (row.holder, row.epoch) == (lease.holder, lease.epoch):
            _write(tx, Lease(RELEASED, lease.epoch, lease.since, db_now(tx.conn)),
                   exists=True)


def _write(tx: Tx, lease: Lease, *, exists: bool) -> None:
    values = {"holder": lease.holder, "node": node(), "epoch": lease.epoch,
              "since": lease.since, "expires": lease.expires}
    if exists:
        tx.conn.execute(lease_table.update().where(lease_table.c.id == 1).values(**values))
    else:
        tx.conn.execute(lease_table.insert().values(id=1, **values))


def heartbeat(store: Store, name: str, started: str, lease: Lease | None) -> None:
    """This daemon's row in `vigil monitors` (no chain lock: a row of its own)."""
    with store.engine.begin() as conn:
        values = {"heartbeat": db_now(conn), "leading": int(lease is not None),
                  "epoch": lease.epoch if lease else 0, "started": started}
        if not conn.execute(monitors_table.update().where(monitors_table.c.name == name)
                            .values(**values)).rowcount:
            conn.execute(monitors_table.insert().values(name=name, **values))


def leave(store: Store, name: str) -> None:
    """A clean stop takes this daemon off `vigil monitors` (a killed one stays, silent)."""
    with store.engine.begin() as conn:
        conn.execute(monitors_table.delete().where(monitors_table.c.name == name))


@dataclass(frozen=True)
class Monitor:
    name: str
    started: str
    heartbeat: str
    leading: bool
    epoch: int
    heartbeat_age_s: float


def monitors(store: Store) -> tuple[list[Monitor], Lease | None, str]:
    """Every daemon that has beaten, the lease, and the database's time."""
    lease, now = current(store)
    with store.engine.connect() as conn:
        rows = conn.execute(select(monitors_table).order_by(monitors_table.c.name)).all()
    t = datetime.fromisoformat(now)
    live = lease if lease and lease.expires > now else None
    return [Monitor(r.name, r.started, r.heartbeat,
                    bool(live and live.holder == r.name), r.epoch,
                    max(0.0, (t - datetime.fromisoformat(r.heartbeat)).total_seconds()))
            for r in rows], live, now
