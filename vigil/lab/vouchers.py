"""Three voucher libraries in the lab (finance, central bank, agent bank A), each with its
vendor's own schema, filled with realistic vouchers and chosen discrepancies.

`generate()` returns what a correct reconciliation must find, voucher by voucher.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from vigil.lab.pg import PRIMARY_PORT

# party -> (database, table, columns in canonical order: number, type, date, amount,
#           payer, payee, signed, sent, received, receipt)
SCHEMAS = {
    "finance": ("vouchers_finance", "pay_voucher",
                ("voucher_no", "voucher_type", "biz_date", "amount", "payer_acct", "payee_acct",
                 "is_signed", "is_sent", "is_received", "receipt_back")),
    "pboc": ("vouchers_pboc", "pz",
             ("pzbh", "pzlx", "ywrq", "je", "fkzh", "skzh", "qz", "fs", "js", "hz")),
    "bank-a": ("vouchers_bank_a", "vouchers",
               ("no", "kind", "day", "amt", "payer", "payee", "signed", "sent", "received",
                "receipt")),
}
TYPES = ("直接支付", "授权支付", "实拨", "工资统发")


def dsn(party: str) -> str:
    return f"host=127.0.0.1 port={PRIMARY_PORT} dbname={SCHEMAS[party][0]} user=postgres"


def query(party: str) -> str:
    """The SELECT a site would configure for this vendor's schema."""
    _db, table, c = SCHEMAS[party]
    names = ("number", "type", "business_date", "amount", "payer_account", "payee_account",
             "signed", "sent", "received", "receipt_returned")
    cols = ", ".join(f"{src} AS {dst}" for src, dst in zip(c, names, strict=True))
    return (f"SELECT {cols} FROM {table} WHERE {c[2]} BETWEEN %(since)s AND %(until)s "
            f"ORDER BY {c[0]}")


@dataclass
class Expected:
    """What reconciling finance against each party must find."""

    resend_to: dict[str, set[str]] = field(default_factory=dict)  # finance -> party
    resend_from: dict[str, set[str]] = field(default_factory=dict)  # party -> finance
    differs: dict[str, set[str]] = field(default_factory=dict)
    missing: dict[str, set[str]] = field(default_factory=dict)  # the party lacks them
    extra: dict[str, set[str]] = field(default_factory=dict)  # only the party has them
    not_received: dict[str, set[str]] = field(default_factory=dict)  # sent, not received
    no_receipt: dict[str, set[str]] = field(default_factory=dict)  # received, no receipt


def _connect(database: str) -> Any:
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=PRIMARY_PORT, user="postgres",
                           dbname=database, autocommit=True)


def create() -> None:
    with _connect("postgres") as admin:
        have = {r[0] for r in admin.execute("SELECT datname FROM pg_database")}
        for db, _table, _cols in SCHEMAS.values():
            if db not in have:
                admin.execute(f'CREATE DATABASE "{db}"')
    for db, table, c in SCHEMAS.values():
        with _connect(db) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(
                f"CREATE TABLE {table} ({c[0]} text PRIMARY KEY, {c[1]} text NOT NULL, "
                f"{c[2]} date NOT NULL, {c[3]} numeric(18,2) NOT NULL, {c[4]} text NOT NULL, "
                f"{c[5]} text NOT NULL, {c[6]} boolean, {c[7]} boolean, {c[8]} boolean, "
                f"{c[9]} boolean)")


def _copy(party: str, rows: Iterable[tuple[object, ...]]) -> None:
    db, table, c = SCHEMAS[party]
    with _connect(db) as conn, conn.cursor() as cur, \
            cur.copy(f"COPY {table} ({', '.join(c)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    with _connect(db) as conn:
        conn.execute(f"ANALYZE {table}")  # a library in service has its statistics


Row = tuple[str, str, dt.date, Decimal, str, str]


def _party_rows(base: Sequence[Row], gone: set[str], changed: set[str],
                unreceived: set[str], unreceipted: set[str],
                strangers: Sequence[Row]) -> Iterable[tuple[object, ...]]:
    """A receiving party's view of what finance sent, with the injected faults."""
    for v in base:
        number = v[0]
        if number in gone:
            continue
        amount = v[3] + Decimal("0.01") if number in changed else v[3]
        received = number not in unreceived
        yield (*v[:3], amount, *v[4:], True, False, received,
               received and number not in unreceipted)
    for s in strangers:
        yield (*s, True, True, False, False)


def generate(count: int, day: dt.date, *, seed: int = 1, missing: int = 0, extra: int = 0,
             altered: int = 0, not_received: int = 0, no_receipt: int = 0,
             parties: tuple[str, ...] = ("pboc", "bank-a")) -> Expected:
    """Fill the three libraries; inject each kind of discrepancy into each of `parties`."""
    create()
    rng = random.Random(seed)
    base = [(f"{day:%Y%m%d}{i:08d}", rng.choice(TYPES), day,
             Decimal(rng.randrange(100, 50_000_000)) / 100,
             f"6228{rng.randrange(10**12):012d}", f"6222{rng.randrange(10**12):012d}")
            for i in range(1, count + 1)]
    _copy("finance", ((*v, True, True, False, False) for v in base))
    expected = Expected()
    for party in parties:
        picks = rng.sample(range(count), missing + altered + not_received + no_receipt)
        gone = {base[i][0] for i in picks[:missing]}
        changed = {base[i][0] for i in picks[missing:missing + altered]}
        unreceived = {base[i][0] for i in picks[missing + altered:-no_receipt or None]}
        unreceipted = {base[i][0] for i in picks[len(picks) - no_receipt:]} if no_receipt \
            else set()
        strangers = [(f"{day:%Y%m%d}9{i:07d}", "直接支付", day, Decimal("1.00"), "6228000",
                      "6222000") for i in range(extra)]

        _copy(party, _party_rows(base, gone, changed, unreceived, unreceipted, strangers))
        expected.resend_to[party] = gone | unreceived
        expected.resend_from[party] = unreceipted | {s[0] for s in strangers}
        expected.differs[party] = changed
        expected.missing[party] = gone
        expected.extra[party] = {s[0] for s in strangers}
        expected.not_received[party] = unreceived
        expected.no_receipt[party] = unreceipted
    return expected
