"""Where vouchers come from: a party's voucher-library database or an export file.

Every source yields vouchers in ascending voucher number, streaming: memory does not
grow with the number of vouchers. The SQL query is the site's (each vendor's schema
differs) and must return the canonical columns ordered by number; files must be sorted
too, which the reader checks as it goes.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import json
import stat
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from vigil.errors import first_line
from vigil.model import Inventory
from vigil.remediations.vouchers.lines import STATE_BASE, STATE_BITS, line_of
from vigil.remediations.vouchers.voucher import (
    CONTENT_FIELDS,
    STATE_FIELDS,
    Voucher,
    to_cents,
    voucher_from,
)
from vigil.secrets import SecretMissing

BATCH = 5000


class SourceError(Exception):
    """A source cannot be read; the message names it and says why."""


def _checked_order(name: str, vouchers: Iterator[Voucher]) -> Iterator[Voucher]:
    last = None
    for position, v in enumerate(vouchers, 1):
        if last is not None and v.number <= last:
            what = "repeated" if v.number == last else "out of order"
            raise SourceError(f"{name}: voucher {v.number} at record {position} is {what} "
                              "(a source must be sorted by voucher number, without repeats)")
        last = v.number
        yield v


def from_sql(name: str, dsn: str, query: str, params: dict[str, Any]) -> Iterator[Voucher]:
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=False) as conn, \
                conn.cursor(name="vigil_vouchers") as cur:
            cur.itersize = BATCH
            cur.execute(query, params)  # a server-side cursor: rows arrive in batches
            yield from _rows(name, cur)
    except psycopg.Error as exc:
        raise SourceError(f"{name}: database: {first_line(str(exc), type(exc).__name__)}") from None


# Column types PostgreSQL's COPY writes exactly as `line_of` would (by OID): text,
# varchar, char and name for the words, date, numeric or an integer for the amount.
_WORDS = {25, 1043, 1042, 19}
_NATIVE = {"business_date": {1082}, "amount": {1700, 21, 23, 20}}
_BOOL = 16


def lines_from_sql(name: str, dsn: str, query: str, params: dict[str, Any]
                     ) -> Iterator[bytes]:
    """The library's vouchers as lines, straight from `COPY ... TO STDOUT`.

    Reconciliation reads millions of vouchers: PostgreSQL formats them in its own
    process and Vigil compares bytes. Columns of other types (a vendor's text flags,
    a timestamp for a date) go the careful way through `from_sql`.
    """
    import psycopg
    from psycopg import ClientCursor

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET DateStyle = ISO")  # dates as YYYY-MM-DD, as line_of writes
            cur = ClientCursor(conn)
            # COPY takes no parameters: psycopg quotes them into the text.
            site = cur.mogrify(query, params)
            cur.execute(f"SELECT * FROM ({site}) AS v LIMIT 0")
            types = {d.name: d.type_code for d in cur.description or []}
            copy = _copy_sql(site, types)
            if copy is None:
                yield from map(line_of, from_sql(name, dsn, query, params))
                return
            yield from _copied(name, conn.pgconn, copy)
    except psycopg.Error as exc:
        raise SourceError(f"{name}: database: {first_line(str(exc), type(exc).__name__)}") from None


def _copy_sql(site: str, types: dict[str, int]) -> str | None:
    if not all(types.get(c) in _NATIVE.get(c, _WORDS) for c in CONTENT_FIELDS):
        return None
    if any(f in types and types[f] != _BOOL for f in STATE_FIELDS):
        return None
    state = " + ".join(f"coalesce({f}, false)::int * {STATE_BITS[f]}"
                       for f in STATE_FIELDS if f in types) or "0"
    return (f"COPY (SELECT number, type, business_date, round(amount, 2), payer_account, "
            f"payee_account, chr({STATE_BASE} + {state}) FROM ({site}) AS v) TO STDOUT")


def _copied(name: str, pg: Any, copy: str) -> Iterator[bytes]:
    from psycopg import pq

    # libpq's own calls, one row each: psycopg's Copy object costs twice as much a row,
    # and a million rows a side is the point.
    pg.send_query(copy.encode("utf-8"))
    started = pg.get_result()
    if started is None or started.status != pq.ExecStatus.COPY_OUT:
        _raise_result(name, started)
    get = pg.get_copy_data
    position = 0
    while True:
        size, data = get(0)
        if size < 0:
            break
        position += 1
        line = bytes(data)
        if b"\\N" in line:
            _no_nulls(name, position, line)
        yield line
    while (result := pg.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK:
            _raise_result(name, result)


def _raise_result(name: str, result: Any) -> None:
    message = result.error_message.decode("utf-8", "replace") if result else "no result"
    raise SourceError(f"{name}: database: {first_line(message, '?')}")


def _no_nulls(name: str, position: int, line: bytes) -> None:
    fields = line[:-1].split(b"\t")
    for column, value in zip(CONTENT_FIELDS, fields, strict=False):
        if value == b"\\N":
            raise SourceError(f"{name}: row {position}: {column} is NULL")


def _rows(name: str, cur: Any) -> Iterator[Voucher]:
    columns: list[str] = []
    fast: Callable[[tuple[Any, ...]], Voucher] | None = None
    for position, row in enumerate(cur, 1):
        if not columns:
            columns = [d.name for d in cur.description]
            fast = _fast_reader(columns)
        # PostgreSQL's own types need no parsing; anything else goes the careful way.
        voucher = None
        if fast:
            with contextlib.suppress(_NotNative):
                voucher = fast(row)
        yield voucher or _checked(name, position, dict(zip(columns, row, strict=True)))


class _NotNative(Exception):
    pass


def _checked(name: str, position: int, row: dict[str, Any]) -> Voucher:
    try:
        return voucher_from(row)
    except ValueError as exc:
        raise SourceError(f"{name}: row {position}: {exc}") from None


def _fast_reader(columns: list[str]) -> Callable[[tuple[Any, ...]], Voucher] | None:
    names = ("number", "type", "business_date", "amount", "payer_account", "payee_account")
    if not set(names) <= set(columns):
        return None  # voucher_from names what is missing
    at = [columns.index(n) for n in names]
    flags = [columns.index(f) if f in columns else None for f in STATE_FIELDS]

    def read(row: tuple[Any, ...]) -> Voucher:
        number, kind, day, amount, payer, payee = (row[i] for i in at)
        if type(day) is not dt.date or type(amount) is not Decimal:
            raise _NotNative
        signed, sent, received, receipt = (row[i] if i is not None else False for i in flags)
        if not all(type(x) is bool for x in (signed, sent, received, receipt)):
            raise _NotNative
        amount = to_cents(amount)
        return Voucher(str(number), str(kind), day, amount, str(payer), str(payee), signed,
                       sent, received, receipt)

    return read


MAX_LINE = 1024 * 1024  # one voucher is a few hundred bytes; a megabyte is no voucher
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def file_encoding(path: Path, encoding: str | None) -> str:
    """The encoding to read an export with: the one given (GB18030 / GBK for many banks'
    exports), else what its byte-order mark says, else UTF-8."""
    if encoding:
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise SourceError(f"{path}: unknown encoding {encoding!r}") from None
    try:
        with path.open("rb") as fh:
            head = fh.read(3)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")


def from_file(name: str, path: Path, encoding: str | None = None) -> Iterator[Voucher]:
    """Vouchers from a CSV or JSON-lines export, checked line by line: a regular file
    (a pipe would hang), bounded lines and fields, one JSON object a line."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise SourceError(f"{name}: {path}: not a regular file")
    except OSError as exc:
        raise SourceError(f"{name}: {path}: {exc.strerror}") from None
    codec = file_encoding(path, encoding)
    line_no = 1
    try:
        with path.open(encoding=codec, newline="") as fh:
            if path.suffix in (".jsonl", ".ndjson"):
                while line := fh.readline(MAX_LINE + 1):
                    if len(line) > MAX_LINE:
                        raise SourceError(f"{name}: {path}:{line_no}: a line longer than "
                                          f"{MAX_LINE // 1024} KiB")
                    if line.strip():
                        yield _parse(name, path, line_no, json.loads(line))
                    line_no += 1
            else:
                reader = csv.DictReader(fh)
                line_no = 2
                for row in reader:
                    yield _parse(name, path, line_no, row)
                    line_no = reader.line_num + 1
    except OSError as exc:
        raise SourceError(f"{name}: {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name}: {path}:{line_no}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise SourceError(f"{name}: {path}:{line_no}: JSON nested too deeply") from None
    except csv.Error as exc:
        raise SourceError(f"{name}: {path}:{line_no}: not CSV ({exc})") from None
    except UnicodeError as exc:
        why = getattr(exc, "reason", type(exc).__name__)
        raise SourceError(f"{name}: {path}:{line_no}: not {codec} text ({why}); "
                          f"a bank's export in GBK? give --encoding gb18030") from None


def _parse(name: str, path: Path, line_no: int, row: Any) -> Voucher:
    if not isinstance(row, dict):
        raise SourceError(f"{name}: {path}:{line_no}: not a JSON object but "
                          f"{type(row).__name__}")
    try:
        return voucher_from(row)
    except ValueError as exc:
        raise SourceError(f"{name}: {path}:{line_no}: {exc}") from None


def window(date: dt.date | None, since: dt.datetime | None,
           until: dt.datetime | None) -> dict[str, Any]:
    """Query parameters for a business date or a time window."""
    if date:
        return {"since": date, "until": date}
    return {"since": (since or dt.datetime(1970, 1, 1)).date(),
            "until": (until or dt.datetime(9999, 12, 31)).date()}


def ordered(name: str, vouchers: Iterator[Voucher]) -> Iterator[Voucher]:
    return _checked_order(name, vouchers)


def library_spec(inv: Inventory, name: str, encoding: str | None = None
                 ) -> tuple[str, ...]:
    """Where `name`'s vouchers come from (a party's voucher library in the inventory, or an
    export file), as plain strings a worker process can take. `encoding`: an export
    file's, when it is not UTF-8 (with or without a byte-order mark)."""
    path = Path(name)
    if path.suffix in (".csv", ".jsonl", ".ndjson") and path.exists():
        return ("file", path.stem, str(path), file_encoding(path, encoding))
    library = next((lib for lib in inv.voucher_libraries if lib.party == name), None)
    if library is None:
        known = ", ".join(lib.party for lib in inv.voucher_libraries) or "none"
        raise SourceError(f"no voucher library for {name!r} in the inventory (known: {known}; "
                          "or give a .csv / .jsonl export)")
    if library.source == "file":
        assert library.path
        return ("file", name, library.path, file_encoding(Path(library.path),
                                                          library.encoding or encoding))
    assert library.dsn and library.query
    try:
        dsn = library.dsn.reveal()
    except SecretMissing as exc:
        raise SourceError(f"{name}: {exc}") from None
    return ("sql", name, dsn, library.query)


def open_vouchers(spec: tuple[str, ...], params: dict[str, Any]) -> Iterator[Voucher]:
    if spec[0] == "file":
        return ordered(spec[1], from_file(spec[1], Path(spec[2]), spec[3]))
    return ordered(spec[1], from_sql(spec[1], spec[2], spec[3], params))


def vouchers_of(inv: Inventory, name: str, params: dict[str, Any],
                encoding: str | None = None) -> Iterator[Voucher]:
    return open_vouchers(library_spec(inv, name, encoding), params)


def open_lines(spec: tuple[str, ...], params: dict[str, Any]) -> Iterator[bytes]:
    if spec[0] == "file":
        return map(line_of, from_file(spec[1], Path(spec[2]), spec[3]))
    return lines_from_sql(spec[1], spec[2], spec[3], params)
