"""The append-only, hash-chained event log (SQLite by default, PostgreSQL in production).

Each event's hash is SHA-256 over the previous hash and the event's canonical JSON, so
altering, deleting or inserting any row breaks the chain at that row; `chain_head`
remembers the last hash so deleting the newest rows shows too. A small key-value table
holds state derived from the events (e.g. each check's last status), written in the
same transaction as the events it derives from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
)
from sqlalchemy import text as sql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from vigil import identity
from vigil.errors import UserError, first_error, first_line
from vigil.secrets import redact

GENESIS = "0" * 64

metadata = MetaData()
events_table = Table(
    "events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("kind", String(64), nullable=False, index=True),
    Column("subject", String(255), nullable=False, index=True),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
head_table = Table(
    "chain_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)
state_table = Table(
    "state", metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("seq", Integer, nullable=False),  # the event this state was derived from
)


# Who leads the daemons sharing this store (vigil.lease): one row, its epoch the fencing
# token, its expiry by the database's clock.
lease_table = Table(
    "leader_lease", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(255), nullable=False),
    Column("node", String(255), nullable=False),  # machine and pid namespace of the holder
    Column("epoch", Integer, nullable=False),
    Column("since", String(40), nullable=False),
    Column("expires", String(40), nullable=False),
)
# Every daemon's last heartbeat, for `vigil monitors`.
monitors_table = Table(
    "monitors", metadata,
    Column("name", String(255), primary_key=True),
    Column("started", String(40), nullable=False),
    Column("heartbeat", String(40), nullable=False),
    Column("leading", Integer, nullable=False),
    Column("epoch", Integer, nullable=False),
)


class StoreError(UserError):
    """The store cannot be opened or written; the message says which and why."""


@dataclass(frozen=True)
class Event:
    seq: int
    at: str
    kind: str
    subject: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


def canonical(seq: int, at: str, kind: str, subject: str, data_json: str) -> str:
    return json.dumps({"seq": seq, "at": at, "kind": kind, "subject": subject,
                       "data": json.loads(data_json)},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def default_url() -> str:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return f"sqlite:///{state / 'vigil' / 'vigil.db'}"


def resolve_url(url: str | None) -> str:
    """--store, else $VIGIL_STORE, else ~/.local/state/vigil/vigil.db. A bare path is SQLite."""
    url = url or os.environ.get("VIGIL_STORE") or default_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("sqlite:") and (url.rstrip("/") in ("sqlite:", "sqlite:/")
                                      or url.endswith(":memory:")):
        raise StoreError(f"{url}: an in-memory store keeps nothing (records would vanish); "
                         f"give a file path or a database URL")
    return url


class Fenced(StoreError):
    """A leader's write after it lost the lease: refused, nothing of it committed."""


class Tx:
    """One transaction: events appended here and state set here commit together."""

    def __init__(self, conn: Connection, fence: tuple[str, int] | None = None) -> None:
        self.conn = conn
        row = conn.execute(
            select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == 1)
            .with_for_update()).first()
        if fence:
            # Every writer holds the head's lock, and the lease changes hands only in a
            # transaction that holds it too: a write checked here cannot interleave with
            # a takeover.
            lease = lease_row(conn)
            if lease is None or (lease.holder, lease.epoch) != fence or \
                    lease.expires <= db_now(conn):
                raise Fenced(f"{fence[0]} no longer leads (epoch {fence[1]}): write refused")
        if row is not None and not (isinstance(row.hash, str) and _HEX64.fullmatch(row.hash)
                                    and isinstance(row.seq, int)):
            raise StoreError(f"the chain head is unreadable{DAMAGED}")
        self._seq: int = row.seq if row else 0
        self._hash: str = row.hash if row else GENESIS
        self._had_head = row is not None
        self.appended: list[Event] = []

    def append(self, kind: str, subject: str, data: dict[str, Any] | None = None,
               at: datetime | None = None) -> Event:
        seq = self._seq + 1
        actor = identity.current()
        if actor is not None and not (data and "actor" in data):
            data = {**(data or {}), "actor": actor.record()}
        stamp = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
        data_json = redact(json.dumps(data or {}, sort_keys=True, ensure_ascii=False,
                                      default=str))
        digest = chain_hash(self._hash, canonical(seq, stamp, kind, subject, data_json))
        self.conn.execute(events_table.insert().values(
            seq=seq, at=stamp, kind=kind, subject=subject, data=data_json,
            prev_hash=self._hash, hash=digest))
        ev = Event(seq, stamp, kind, subject, json.loads(data_json), self._hash, digest)
        self._seq, self._hash = seq, digest
        self.appended.append(ev)
        return ev

    def get_state(self, key: str) -> Any:
        row = self.conn.execute(select(state_table.c.value).where(state_table.c.key == key)).first()
        return json.loads(row.value) if row else None

    def set_state(self, key: str, value: Any) -> None:
        payload = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        updated = self.conn.execute(state_table.update().where(state_table.c.key == key)
                                    .values(value=payload, seq=self._seq)).rowcount
        if not updated:
            self.conn.execute(state_table.insert().values(key=key, value=payload, seq=self._seq))

    def delete_state(self, key: str) -> None:
        self.conn.execute(state_table.delete().where(state_table.c.key == key))

    def states(self, prefix: str) -> dict[str, Any]:
        return _states(self.conn, prefix)

    def _close(self) -> None:
        if not self.appended:
            return
        values = {"seq": self._seq, "hash": self._hash}
        if self._had_head:
            self.conn.execute(head_table.update().where(head_table.c.id == 1).values(**values))
        else:
            self.conn.execute(head_table.insert().values(id=1, **values))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    bad_seq: int | None = None
    reason: str = ""


class Store:
    def __init__(self, url: str | None = None, *, connect: bool = True) -> None:
        """`connect=False`: not yet (a daemon starts while its store is away, and calls
        `create_schema` once it answers)."""
        self.fence: tuple[str, int] | None = None  # (holder, epoch): set by a leading daemon
        self.url = resolve_url(url)
        self.engine = _engine(self.url)
        self.schema_ready = False
        if not connect:
            return
        try:
            self.create_schema()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {self.safe_url}: {exc.__class__.__name__}: "
                             f"{str(exc.orig) if hasattr(exc, 'orig') else exc}") from None

    def create_schema(self) -> None:
        """The tables, where missing; raises SQLAlchemyError while the store is away."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two daemons starting on an empty store: one creates, the other waits and
                # finds the tables there (else one trips over the other's half-made schema).
                conn.execute(sql("SELECT pg_advisory_xact_lock(7351)"))
            metadata.create_all(conn)
        self.schema_ready = True

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self, *, fenced: bool = True) -> Iterator[Tx]:
        """Raises Fenced, having written nothing, when this Store's holder no longer leads
        (`fenced=False`: the lease's own bookkeeping)."""
        with self.engine.begin() as conn:
            tx = Tx(conn, self.fence if fenced else None)
            yield tx
            tx._close()

    def append(self, kind: str, subject: str, data: dict[str, Any] | None = None) -> Event:
        with self.transaction() as tx:
            return tx.append(kind, subject, data)

    def events(self, *, kind: str | None = None, subject: str | None = None,
               after: int = 0, limit: int | None = None,
               subject_prefix: str | None = None) -> list[Event]:
        query = select(events_table)
        if after:
            query = query.where(events_table.c.seq > after)
        if kind:
            query = query.where(events_table.c.kind == kind)
        if subject:
            query = query.where(events_table.c.subject == subject)
        if subject_prefix:  # a range, so the subject's index serves it (LIKE may not)
            upper = subject_prefix[:-1] + chr(ord(subject_prefix[-1]) + 1)
            query = query.where(events_table.c.subject >= subject_prefix,
                                events_table.c.subject < upper)
        # One subject's events are few: found by its index and sorted here, else the
        # database may walk the whole log in seq order to spare itself the sort.
        by_subject = (subject or subject_prefix) and not limit
        if not by_subject:
            query = query.order_by(events_table.c.seq)
        if limit:
            query = query.limit(limit)
        found = self.rows(query)
        return sorted(found, key=lambda e: e.seq) if by_subject else found

    def rows(self, query: Any) -> list[Event]:
        """The events a select over `events_table` finds (a search's own ordering)."""
        with self.engine.connect() as conn:
            return [Event(r.seq, r.at, r.kind, r.subject, _event_data(r), r.prev_hash, r.hash)
                    for r in conn.execute(query)]

    def get_state(self, key: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(state_table.c.value)
                               .where(state_table.c.key == key)).first()
        return _value(key, row.value) if row else None

    def states(self, prefix: str) -> dict[str, Any]:
        """Every state row whose key starts with `prefix`."""
        with self.engine.connect() as conn:
            return _states(conn, prefix)

    def changed_states(self, prefix: str, since: int) -> tuple[dict[str, Any], int]:
        """State rows under `prefix` set at event seq `since` or later, and the seq to ask
        from next time. Writers serialise on the chain head, so a row set later never
        carries an earlier seq; one set without an event carries the head's seq, hence
        "or later"."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(state_table.c.key, state_table.c.value,
                                       state_table.c.seq)
                                .where(state_table.c.key.startswith(prefix, autoescape=True))
                                .where(state_table.c.seq >= since))
            changed, last = {}, since
            for r in rows:
                changed[r.key] = _value(r.key, r.value)
                last = max(last, r.seq)
        return changed, last

    def verify(self) -> Verdict:
        """Walk the chain from the first event; name the first event that does not fit."""
        expected_seq, prev, count = 1, GENESIS, 0
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=1000).execute(
                select(events_table).order_by(events_table.c.seq))
            for r in rows:
                if r.seq != expected_seq:
                    what = "missing (deleted)" if r.seq > expected_seq else "duplicated"
                    return Verdict(False, count, expected_seq,
                                   f"event {expected_seq} is {what}; next row is {r.seq}")
                if r.prev_hash != prev:
                    return Verdict(False, count, r.seq,
                                   f"event {r.seq} does not follow event {r.seq - 1} "
                                   "(previous hash differs: a row was altered or inserted)")
                try:
                    content = canonical(r.seq, r.at, r.kind, r.subject, r.data)
                    digest = chain_hash(prev, content)
                    _event_data(r)
                except StoreError:
                    return Verdict(False, count, r.seq, f"event {r.seq} is unreadable (its "
                                   "data is not a JSON object)")
                except (ValueError, TypeError, RecursionError):
                    return Verdict(False, count, r.seq, f"event {r.seq} is unreadable (not "
                                   "valid UTF-8 JSON)")
                if digest != r.hash:
                    return Verdict(False, count, r.seq,
                                   f"event {r.seq} was altered (its content no longer "
                                   "matches its hash)")
                prev, expected_seq, count = r.hash, expected_seq + 1, count + 1
            head = conn.execute(select(head_table).where(head_table.c.id == 1)).first()
        last = expected_seq - 1
        if head is None and count:
            return Verdict(False, count, None, "chain head record is missing")
        if head is not None and (head.seq != last or head.hash != prev):
            return Verdict(False, count, last + 1,
                           f"the chain head says {head.seq} events but {last} remain: "
                           f"events after {last} were deleted")
        try:  # the records the commands read (not chained, but they must be readable)
            with self.engine.connect() as conn:
                _states(conn, "")
        except StoreError as exc:
            return Verdict(False, count, None, str(exc).split(";")[0])
        return Verdict(True, count)


def _states(conn: Connection, prefix: str) -> dict[str, Any]:
    rows = conn.execute(select(state_table.c.key, state_table.c.value)
                        .where(state_table.c.key.startswith(prefix, autoescape=True)))
    return {r.key: _value(r.key, r.value) for r in rows}


T = TypeVar("T")
DAMAGED = "; the store is damaged: `vigil events verify` names what"
_HEX64 = re.compile(r"[0-9a-f]{64}")


_UNREADABLE = object()


def _parsed(text: Any) -> Any:
    """A row's JSON, or _UNREADABLE (bytes that were not UTF-8 are escaped by the text
    factory, and refused here)."""
    try:
        text.encode("utf-8")
        return json.loads(text)
    except (ValueError, TypeError, RecursionError, AttributeError):
        return _UNREADABLE


def _value(key: str, text: str) -> Any:
    value = _parsed(text)
    if value is _UNREADABLE:
        raise StoreError(f"record {key[:80]!r} is unreadable{DAMAGED}")
    return value


def _event_data(row: Any) -> dict[str, Any]:
    data = _parsed(row.data)
    if not isinstance(data, dict):
        raise StoreError(f"event {row.seq} is unreadable{DAMAGED}")
    return data


def checked_record(adapter: TypeAdapter[T], key: str, value: Any, what: str) -> T:
    """A stored record of a typed kind (an incident, a step), validated: a damaged one is
    one line naming it, never a KeyError later."""
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        raise StoreError(f"{what} {key[:80]!r} is damaged ({first_error(exc)}){DAMAGED}"
                         ) from None


def lease_row(conn: Connection) -> Any:
    """The leader lease's one row (vigil.lease), or None before any daemon led."""
    return conn.execute(select(lease_table).where(lease_table.c.id == 1)).first()


def db_now(conn: Connection) -> str:
    """The database's clock, as the ISO text every time column holds: one clock for every
    daemon sharing the store, whatever their own clocks say."""
    if conn.dialect.name == "postgresql":
        value = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
        return str(value.astimezone(UTC).isoformat(timespec="microseconds"))
    text = conn.exec_driver_sql("SELECT strftime('%Y-%m-%dT%H:%M:%f', 'now')").scalar_one()
    return datetime.fromisoformat(f"{text}+00:00").isoformat(timespec="microseconds")


def _no_password(url: str) -> str:
    """A URL for a message: whatever stands between :// and @ may hold a password."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}…@{rest.rpartition('@')[2]}" if "@" in rest else url


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from None
    options: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # A store that went away answers within seconds, not at TCP's leisure (the daemon
        # must keep checking, and answer systemd's watchdog): a connection attempt, or a
        # request the network swallows (a cut: no reset, no answer), fails after 5 s. A
        # connection left over from before a restart of the database is tested before use.
        # A client that stops inside a transaction (a daemon frozen by SIGSTOP, a hung VM)
        # would hold the chain head's lock, and with it every other daemon's lease, until
        # it woke: PostgreSQL ends such a session after the lease's span.
        options = {"connect_args": {"connect_timeout": 5, "tcp_user_timeout": 5000,
                                    "keepalives": 1, "keepalives_idle": 5,
                                    "keepalives_interval": 2, "keepalives_count": 2,
                                    "options": "-c idle_in_transaction_session_timeout=5000"},
                   "pool_pre_ping": True}
    try:
        engine = create_engine(url, **options)
    except (ArgumentError, ValueError, ImportError) as exc:  # a malformed URL, no driver
        why = first_line(str(exc), type(exc).__name__)
        raise StoreError(f"not a store URL: {_no_password(url)} ({why})") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            # A damaged row (bytes that are not UTF-8) reads as text with its bad bytes
            # escaped, so the command can say which row it is instead of crashing.
            dbapi_conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a committed event survives power loss
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front, so two writers serialise on the
            # chain head instead of both reading it and forking the chain.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    return engine
