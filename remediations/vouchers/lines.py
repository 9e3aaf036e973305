"""Vouchers as lines: one line of bytes each, the form reconciliation compares.

A voucher's line is its content in PostgreSQL's COPY text format (tab between fields,
backslash escapes), then one byte for its state flags:

    number \t type \t business_date \t amount \t payer \t payee \t S \n

so a voucher library streams lines straight out of `COPY ... TO STDOUT` and two
libraries compare a million vouchers as bytes, building a `Voucher` only for the few
that disagree. Files and non-native columns are turned into the same bytes by
`line_of`, so both ways meet in the middle.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import NamedTuple

from vigil.remediations.vouchers.voucher import Voucher

# The state byte: '@' (64) plus signed 8, sent 4, received 2, receipt returned 1.
STATE_BASE = 64
STATE_BITS = {"signed": 8, "sent": 4, "received": 2, "receipt_returned": 1}

# COPY's text format: these characters travel as a backslash sequence.
_ESCAPES = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


def state_of(signed: bool, sent: bool, received: bool, receipt_returned: bool) -> int:
    return STATE_BASE + signed * 8 + sent * 4 + received * 2 + receipt_returned


def flags(state: int) -> tuple[bool, bool, bool, bool]:
    bits = state - STATE_BASE
    return bool(bits & 8), bool(bits & 4), bool(bits & 2), bool(bits & 1)


def escape(text: str) -> str:
    if not any(c in text for c in _ESCAPES):
        return text
    return "".join(_ESCAPES.get(c, c) for c in text)


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, chars = [], iter(text)
    for c in chars:
        out.append(_UNESCAPES.get(next(chars, ""), "") if c == "\\" else c)
    return "".join(out)


def line_of(v: Voucher) -> bytes:
    fields = (v.number, v.type, v.business_date.isoformat(), f"{v.amount:.2f}",
              v.payer_account, v.payee_account,
              chr(state_of(v.signed, v.sent, v.received, v.receipt_returned)))
    return ("\t".join(escape(f) for f in fields) + "\n").encode("utf-8")


def number_of(line: bytes) -> bytes:
    return line[:line.index(9)]


def voucher_of(line: bytes) -> Voucher:
    """The voucher a line holds; only discrepancies need one."""
    number, kind, day, amount, payer, payee, state = line.decode("utf-8")[:-1].split("\t")
    signed, sent, received, receipt = flags(ord(state))
    return Voucher(unescape(number), unescape(kind), dt.date.fromisoformat(day),
                   Decimal(amount), unescape(payer), unescape(payee), signed, sent, received,
                   receipt)


class Gaps(NamedTuple):
    """What two parties' states of one voucher say is missing, and who moved it unsigned."""
    kinds: tuple[str, ...]
    unsigned_a: bool
    unsigned_b: bool


def moved_unsigned(state: int) -> bool:
    signed, sent, received, _ = flags(state)
    return (sent or received) and not signed


def _gaps(sa: int, sb: int) -> Gaps | None:
    _, a_sent, a_received, a_receipt = flags(sa)
    _, b_sent, b_received, b_receipt = flags(sb)
    kinds = [kind for kind, gap in (
        ("not_received_by_b", a_sent and not b_received),
        ("not_received_by_a", b_sent and not a_received),
        ("receipt_missing_from_b", b_received and a_sent and not b_receipt),
        ("receipt_missing_from_a", a_received and b_sent and not a_receipt)) if gap]
    found = Gaps(tuple(kinds), moved_unsigned(sa), moved_unsigned(sb))
    return found if any(found) else None


# Every pair of state bytes worked out once: the merge's common case is one lookup
# that finds nothing.
GAPS: list[list[Gaps | None]] = [
    [_gaps(sa, sb) if sa >= STATE_BASE and sb >= STATE_BASE else None
     for sb in range(STATE_BASE + 16)] for sa in range(STATE_BASE + 16)]
