"""Pairwise reconciliation of two voucher libraries (对账, P4.3.5(3)d, P4.3.6, P4.3.7).

Both sources stream in voucher-number order and are merged in one pass, so memory stays
bounded whatever the number of vouchers. Every discrepancy is written as it is found:
to a JSON-lines file, and to a resend list for the direction it must travel.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediations.vouchers import Voucher

KINDS = ("only_in_a", "only_in_b", "differs", "not_received_by_b", "not_received_by_a",
         "receipt_missing_from_b", "receipt_missing_from_a")
SAMPLES = 20

# What each kind means, for people (zh, en); {a} and {b} are the parties.
MEANING = {
    "only_in_a": ("仅{a}有，{b}缺失", "only {a} has it"),
    "only_in_b": ("仅{b}有，{a}缺失", "only {b} has it"),
    "differs": ("双方都有但内容不一致", "both have it, with different content"),
    "not_received_by_b": ("{a}已发送，{b}未收到", "sent by {a}, never received by {b}"),
    "not_received_by_a": ("{b}已发送，{a}未收到", "sent by {b}, never received by {a}"),
    "receipt_missing_from_b": ("{b}已收到但未回执", "received by {b}, no receipt returned"),
    "receipt_missing_from_a": ("{a}已收到但未回执", "received by {a}, no receipt returned"),
}


@dataclass
class Report:
    a: str
    b: str
    compared: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return not any(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "compared": self.compared,
                "consistent": self.consistent, "counts": {k: self.counts[k] for k in KINDS},
                "samples": self.samples, "files": self.files}


class _Writers:
    """The discrepancy log and one resend list per direction, written as we go."""

    def __init__(self, out: Path, a: str, b: str) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.paths = {"discrepancies": out / f"discrepancies-{a}-{b}.jsonl",
                      f"resend {a}->{b}": out / f"resend-{a}-to-{b}.csv",
                      f"resend {b}->{a}": out / f"resend-{b}-to-{a}.csv"}
        self.log = self.paths["discrepancies"].open("w", encoding="utf-8")
        self.to_b = self.paths[f"resend {a}->{b}"].open("w", encoding="utf-8", newline="")
        self.to_a = self.paths[f"resend {b}->{a}"].open("w", encoding="utf-8", newline="")
        self.csv_b, self.csv_a = csv.writer(self.to_b), csv.writer(self.to_a)
        for w in (self.csv_a, self.csv_b):
            w.writerow(["number", "what", "reason", "business_date", "amount"])

    def close(self) -> None:
        for fh in (self.log, self.to_a, self.to_b):
            fh.close()


def _row(v: Voucher) -> dict[str, Any]:
    return {"type": v.type, "business_date": v.business_date.isoformat(),
            "amount": f"{v.amount:.2f}", "payer_account": v.payer_account,
            "payee_account": v.payee_account, "signed": v.signed, "sent": v.sent,
            "received": v.received, "receipt_returned": v.receipt_returned}


def reconcile(a: str, a_vouchers: Iterator[Voucher], b: str, b_vouchers: Iterator[Voucher],
              out: Path) -> Report:
    report = Report(a, b)
    w = _Writers(out, a, b)
    report.files = {k: str(v) for k, v in w.paths.items()}

    def found(kind: str, number: str, direction: str | None, what: str,
              va: Voucher | None, vb: Voucher | None, detail: str = "") -> None:
        report.counts[kind] += 1
        entry = {"kind": kind, "number": number, "detail": detail,
                 a: _row(va) if va else None, b: _row(vb) if vb else None}
        w.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
        samples = report.samples.setdefault(kind, [])
        if len(samples) < SAMPLES:
            samples.append(entry)
        v = va or vb
        assert v is not None
        line = [number, what, kind, v.business_date.isoformat(), f"{v.amount:.2f}"]
        if direction == "to_b":
            w.csv_b.writerow(line)
        elif direction == "to_a":
            w.csv_a.writerow(line)

    def gaps(va: Voucher, vb: Voucher) -> None:
        if va.sent and not vb.received:
            found("not_received_by_b", va.number, "to_b", "voucher", va, vb)
        if vb.sent and not va.received:
            found("not_received_by_a", va.number, "to_a", "voucher", va, vb)
        if vb.received and va.sent and not vb.receipt_returned:
            found("receipt_missing_from_b", va.number, "to_a", "receipt", va, vb)
        if va.received and vb.sent and not va.receipt_returned:
            found("receipt_missing_from_a", va.number, "to_b", "receipt", va, vb)

    try:
        xa, xb = next(a_vouchers, None), next(b_vouchers, None)
        while xa is not None or xb is not None:
            report.compared += 1
            if xb is None or (xa is not None and xa.number < xb.number):
                assert xa is not None
                found("only_in_a", xa.number, "to_b", "voucher", xa, None)
                xa = next(a_vouchers, None)
            elif xa is None or xb.number < xa.number:
                found("only_in_b", xb.number, "to_a", "voucher", None, xb)
                xb = next(b_vouchers, None)
            else:
                if not xa.same_content(xb):
                    found("differs", xa.number, None, "voucher", xa, xb,
                          ", ".join(xa.differences(xb)))
                else:
                    gaps(xa, xb)
                xa, xb = next(a_vouchers, None), next(b_vouchers, None)
    finally:
        w.close()
    return report
