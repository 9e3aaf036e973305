"""Electronic vouchers as each party's voucher library (电子凭证库) sees them.

A voucher's content (number, type, business date, amount, payer and payee) is what the
parties must agree on; its digest is SHA-256 over that content in a canonical form, so
two libraries can compare millions of vouchers without shipping them. The state flags
are one party's view: signed, sent, received, receipt returned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

CENT = Decimal("0.01")
CONTENT_FIELDS = ("number", "type", "business_date", "amount", "payer_account", "payee_account")
STATE_FIELDS = ("signed", "sent", "received", "receipt_returned")


class Voucher(NamedTuple):  # a tuple: millions are built per reconciliation
    number: str
    type: str
    business_date: dt.date
    amount: Decimal  # exact: money is never a float
    payer_account: str
    payee_account: str
    signed: bool = False
    sent: bool = False
    received: bool = False
    receipt_returned: bool = False
    digest: str = ""  # a digest the source gives; empty: computed from the content

    def content(self) -> str:
        return "|".join([self.number, self.type, self.business_date.isoformat(),
                         f"{self.amount:.2f}", self.payer_account, self.payee_account])

    def content_digest(self) -> str:
        return self.digest or hashlib.sha256(self.content().encode("utf-8")).hexdigest()

    def same_content(self, other: Voucher) -> bool:
        """What equal digests mean, without hashing: millions of pairs are compared."""
        return (self.number == other.number and self.type == other.type
                and self.business_date == other.business_date and self.amount == other.amount
                and self.payer_account == other.payer_account
                and self.payee_account == other.payee_account)

    def differences(self, other: Voucher) -> list[str]:
        return [f for f in CONTENT_FIELDS[1:] if getattr(self, f) != getattr(other, f)]


def to_cents(amount: Decimal) -> Decimal:
    """Two decimals, halves away from zero: what PostgreSQL's round(amount, 2) gives."""
    return amount if amount.as_tuple().exponent == -2 else amount.quantize(CENT, ROUND_HALF_UP)


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "t", "true", "y", "yes", "是")


_TEXT_FIELDS = ("number", "type", "payer_account", "payee_account")
MAX_TEXT = 200  # a voucher number or an account, never a paragraph


def voucher_from(row: dict[str, object]) -> Voucher:
    """Build a voucher from a row whose keys are the canonical column names."""
    try:
        missing = [f for f in CONTENT_FIELDS if row[f] is None]
        if missing:  # a short CSV row or a NULL: never the text "None"
            raise ValueError(f"{missing[0]} is empty (NULL, or a short row)")
        date = row["business_date"]
        if isinstance(date, dt.datetime):  # a vendor's timestamp: its day is the date
            date = date.date()
        elif not isinstance(date, dt.date):
            date = dt.date.fromisoformat(str(date))
        amount = row["amount"]
        amount = amount if isinstance(amount, Decimal) else Decimal(str(amount))
        if not amount.is_finite():
            raise ValueError(f"amount {amount} is not a number of yuan")
        number, kind, payer, payee = texts = [str(row[f]) for f in _TEXT_FIELDS]
        for field, text in zip(_TEXT_FIELDS, texts, strict=True):
            if len(text) > MAX_TEXT:
                raise ValueError(f"{field} is longer than {MAX_TEXT} characters")
            text.encode("utf-8")  # a lone surrogate (from JSON's \\ud800) is no text
        return Voucher(
            number=number, type=kind, business_date=date, amount=to_cents(amount),
            payer_account=payer, payee_account=payee,
            signed=parse_bool(row.get("signed", False)), sent=parse_bool(row.get("sent", False)),
            received=parse_bool(row.get("received", False)),
            receipt_returned=parse_bool(row.get("receipt_returned", False)))
    except KeyError as exc:
        raise ValueError(f"missing column {exc.args[0]}") from None
    except UnicodeEncodeError:
        raise ValueError("a field is not valid text (a lone surrogate?)") from None
    except (ArithmeticError, ValueError) as exc:
        raise ValueError(f"bad value ({exc})") from None
