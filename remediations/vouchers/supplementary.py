"""Supplementary vouchers (补录凭证, P4.3.5(3)d).

After the voucher library comes back, finance re-signs the business done during the
outage and sends it as supplementary vouchers, which the central bank and agent banks
sign and return. Marking them supplementary is what stops a voucher being paid twice, so
this plan leaves out every voucher a receiving party already holds, flags for people
every one it holds with different content, and marks each voucher once: planning again,
or after a crash, never marks one twice.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vigil import keys
from vigil.remediations.vouchers.voucher import Voucher
from vigil.store import Store, Tx


@dataclass
class Plan:
    party: str
    supplementary: list[str] = field(default_factory=list)  # newly marked
    already_marked: int = 0
    already_held: int = 0  # the party has it: sending again would pay twice
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (number, fields)
    file: str = ""


def plan_all(store: Store, parties: dict[str, tuple[Iterator[Voucher], Iterator[Voucher]]],
             out: Path, outage: str) -> list[Plan]:
    """Every party's plan in one transaction, their lists appearing in `out` only when all
    were made: a source refused halfway marks nothing and leaves no list behind."""
    plans: list[Plan] = []
    parts: list[tuple[Path, Path]] = []
    existed = out.exists()
    try:
        with store.transaction() as tx:
            for party, (finance, theirs) in parties.items():
                part = out / f".supplementary-finance-to-{party}.csv.part"
                parts.append((part, out / f"supplementary-finance-to-{party}.csv"))
                plans.append(plan(tx, party, finance, theirs, part, outage))
        for part, final in parts:
            part.replace(final)
    except BaseException:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        for part, _ in parts:
            part.unlink(missing_ok=True)
    for pl, (_, final) in zip(plans, parts, strict=True):
        pl.file = str(final)
    return plans


def plan(tx: Tx, party: str, finance: Iterator[Voucher], theirs: Iterator[Voucher],
         path: Path, outage: str) -> Plan:
    """Merge finance's outage-period vouchers with what `party` holds; mark the missing
    and list them in `path`."""
    result = Plan(party, file=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "business_date", "amount", "payer_account", "payee_account",
                         "mark"])

        def mark(v: Voucher) -> None:
            key = keys.supplementary(party, v.number)
            if tx.get_state(key) is None:
                tx.append("voucher.supplementary", v.number,
                          {"party": party, "outage": outage, "digest": v.content_digest(),
                           "amount": f"{v.amount:.2f}"})
                tx.set_state(key, {"digest": v.content_digest(), "outage": outage})
                result.supplementary.append(v.number)
            else:
                result.already_marked += 1
            writer.writerow([v.number, v.business_date.isoformat(), f"{v.amount:.2f}",
                             v.payer_account, v.payee_account, "补录凭证 supplementary"])

        _merge(finance, theirs, mark,
               held=lambda: setattr(result, "already_held", result.already_held + 1),
               conflict=lambda a, b: result.conflicts.append(
                   (a.number, ", ".join(a.differences(b)))))
    return result


def _merge(ours: Iterator[Voucher], theirs: Iterator[Voucher], missing: Callable[[Voucher], None],
           held: Callable[[], None], conflict: Callable[[Voucher, Voucher], None]) -> None:
    a, b = next(ours, None), next(theirs, None)
    while a is not None:
        if b is None or a.number < b.number:
            missing(a)
            a = next(ours, None)
        elif b.number < a.number:
            b = next(theirs, None)  # theirs alone: reconciliation's business, not ours
        else:
            if a.same_content(b):
                held()
            else:
                conflict(a, b)
            a, b = next(ours, None), next(theirs, None)
