"""Pairwise reconciliation of two voucher libraries (对账, P4.3.5(3)d, P4.3.6, P4.3.7).

Both sources stream lines (`vigil.remediations.vouchers.lines`) in voucher-number order and are
merged in one pass, so memory stays bounded whatever the number of vouchers; two lines
with the same content bytes cost one comparison, and a `Voucher` is built only for a
discrepancy. Every discrepancy is written as it is found:
to a JSON-lines file, and to a resend list for the direction it must travel.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.remediations.vouchers.lines import GAPS, Gaps, moved_unsigned, number_of, voucher_of
from vigil.remediations.vouchers.sources import SourceError, open_lines
from vigil.remediations.vouchers.voucher import Voucher

KINDS = ("only_in_a", "only_in_b", "differs", "not_received_by_b", "not_received_by_a",
         "receipt_missing_from_b", "receipt_missing_from_a")
SAMPLES = 20
# Where a state gap is mended: which way the resend goes, and what is resent.
GAP_ROUTES = {"not_received_by_b": ("to_b", "voucher"), "not_received_by_a": ("to_a", "voucher"),
              "receipt_missing_from_b": ("to_a", "receipt"),
              "receipt_missing_from_a": ("to_b", "receipt")}

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
    unsigned: Counter[str] = field(default_factory=Counter)  # moved but never signed

    @property
    def consistent(self) -> bool:
        return not any(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "compared": self.compared,
                "consistent": self.consistent, "counts": {k: self.counts[k] for k in KINDS},
                "samples": self.samples, "files": self.files}


class _Writers:
    """The discrepancy log and one resend list per direction, written as we go under
    temporary names: a refused comparison leaves no resend list anyone could act on."""

    def __init__(self, out: Path, a: str, b: str) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.paths = {"discrepancies": out / f"discrepancies-{a}-{b}.jsonl",
                      f"resend {a}->{b}": out / f"resend-{a}-to-{b}.csv",
                      f"resend {b}->{a}": out / f"resend-{b}-to-{a}.csv"}
        self.parts = {k: p.with_name(f".{p.name}.part") for k, p in self.paths.items()}
        self.log = self.parts["discrepancies"].open("w", encoding="utf-8")
        self.to_b = self.parts[f"resend {a}->{b}"].open("w", encoding="utf-8", newline="")
        self.to_a = self.parts[f"resend {b}->{a}"].open("w", encoding="utf-8", newline="")
        self.csv_b, self.csv_a = csv.writer(self.to_b), csv.writer(self.to_a)
        for w in (self.csv_a, self.csv_b):
            w.writerow(["number", "what", "reason", "business_date", "amount"])

    def close(self, keep: bool) -> None:
        for fh in (self.log, self.to_a, self.to_b):
            fh.close()
        for key, part in self.parts.items():
            if keep:
                part.replace(self.paths[key])
            else:
                part.unlink(missing_ok=True)


def _row(v: Voucher) -> dict[str, Any]:
    return {"type": v.type, "business_date": v.business_date.isoformat(),
            "amount": f"{v.amount:.2f}", "payer_account": v.payer_account,
            "payee_account": v.payee_account, "signed": v.signed, "sent": v.sent,
            "received": v.received, "receipt_returned": v.receipt_returned}


def reconcile(a: str, a_lines: Iterator[bytes], b: str, b_lines: Iterator[bytes],
              out: Path) -> Report:
    """Merge two libraries' lines (`lines.py`), both in voucher-number order."""
    report = Report(a, b)
    w = _Writers(out, a, b)
    report.files = {k: str(v) for k, v in w.paths.items()}

    def found(kind: str, direction: str | None, what: str, ra: bytes | None,
              rb: bytes | None) -> None:
        va, vb = (voucher_of(ra) if ra else None), (voucher_of(rb) if rb else None)
        v = va or vb
        assert v is not None
        report.counts[kind] += 1
        detail = ", ".join(va.differences(vb)) if va and vb and kind == "differs" else ""
        entry = {"kind": kind, "number": v.number, "detail": detail,
                 a: _row(va) if va else None, b: _row(vb) if vb else None}
        w.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
        samples = report.samples.setdefault(kind, [])
        if len(samples) < SAMPLES:
            samples.append(entry)
        line = [v.number, what, kind, v.business_date.isoformat(), f"{v.amount:.2f}"]
        if direction == "to_b":
            w.csv_b.writerow(line)
        elif direction == "to_a":
            w.csv_a.writerow(line)

    def unsigned(party: str, line: bytes) -> None:
        if moved_unsigned(line[-2]):
            report.unsigned[party] += 1

    def gaps(ra: bytes, rb: bytes, g: Gaps) -> None:
        for kind in g.kinds:
            direction, what = GAP_ROUTES[kind]
            found(kind, direction, what, ra, rb)
        if g.unsigned_a:
            report.unsigned[a] += 1
        if g.unsigned_b:
            report.unsigned[b] += 1

    def out_of_order(party: str, number: bytes, last: bytes, position: int) -> SourceError:
        what = "repeated" if number == last else "out of order"
        return SourceError(f"{party}: voucher {number.decode('utf-8', 'replace')} at record "
                           f"{position} is {what} (a source must be sorted by voucher number, "
                           "without repeats)")

    table = GAPS
    ra, rb = next(a_lines, None), next(b_lines, None)
    last_a = last_b = b""
    compared = 0
    try:
        while ra is not None and rb is not None:
            compared += 1
            if ra[:-2] == rb[:-2]:  # the same voucher with the same content: most of them
                g = table[ra[-2]][rb[-2]]
                if g:
                    gaps(ra, rb, g)
                number = ra[:ra.index(9)]
                if number <= last_a:
                    raise out_of_order(a, number, last_a, compared - report.counts["only_in_b"])
                last_a = last_b = number
                ra, rb = next(a_lines, None), next(b_lines, None)
                continue
            na, nb = number_of(ra), number_of(rb)
            if na <= last_a:
                raise out_of_order(a, na, last_a, compared - report.counts["only_in_b"])
            if nb <= last_b:
                raise out_of_order(b, nb, last_b, compared - report.counts["only_in_a"])
            if na < nb:
                found("only_in_a", "to_b", "voucher", ra, None)
                unsigned(a, ra)
                last_a, ra = na, next(a_lines, None)
            elif nb < na:
                found("only_in_b", "to_a", "voucher", None, rb)
                unsigned(b, rb)
                last_b, rb = nb, next(b_lines, None)
            else:
                found("differs", None, "voucher", ra, rb)
                unsigned(a, ra)
                unsigned(b, rb)
                last_a = last_b = na
                ra, rb = next(a_lines, None), next(b_lines, None)
        for party, kind, rest, line, last, other in (
                (a, "only_in_a", a_lines, ra, last_a, "only_in_b"),
                (b, "only_in_b", b_lines, rb, last_b, "only_in_a")):
            while line is not None:
                compared += 1
                number = number_of(line)
                if number <= last:
                    raise out_of_order(party, number, last, compared - report.counts[other])
                if kind == "only_in_a":
                    found(kind, "to_b", "voucher", line, None)
                else:
                    found(kind, "to_a", "voucher", None, line)
                unsigned(party, line)
                last, line = number, next(rest, None)
    except BaseException:
        w.close(keep=False)
        raise
    w.close(keep=True)
    report.compared = compared
    return report


# Two library_spec()s, the query parameters and the output folder.
Pair = tuple[tuple[str, ...], tuple[str, ...], dict[str, Any], Path]


def reconcile_pair(job: Pair) -> Report:
    """One pair's reconciliation; in a worker process when there are several pairs."""
    a, b, params, folder = job
    return reconcile(a[1], open_lines(a, params), b[1], open_lines(b, params), folder)


def reconcile_pairs(jobs: list[Pair]) -> list[Report]:
    """All pairs or none: the files of every pair appear in the output folder (created
    then) only when every pair was read to the end; a refusal leaves it as it was."""
    from concurrent.futures import ProcessPoolExecutor

    folder = jobs[0][3]
    folder.absolute().parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.absolute().name}-",
                                    dir=folder.absolute().parent))
    try:
        staged = [(a, b, params, staging) for a, b, params, _ in jobs]
        if len(staged) == 1:
            reports = [reconcile_pair(staged[0])]
        else:  # each pair streams its own two sources: one process a pair uses the cores
            with ProcessPoolExecutor(max_workers=min(len(staged), os.cpu_count() or 1)) as pool:
                reports = list(pool.map(reconcile_pair, staged))
        folder.mkdir(exist_ok=True)
        for report in reports:
            for key, path in report.files.items():
                report.files[key] = str(Path(path).replace(folder / Path(path).name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return reports
