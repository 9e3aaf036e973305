"""`vigil reconcile` and `vigil supplementary plan`: voucher libraries compared
pairwise (P4.3.5(3)d, P4.3.6)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vigil import clock
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    fail,
    load_inv,
    open_store,
    out,
    pick_lang,
)
from vigil.domain import PartyKind
from vigil.remediations.vouchers.reconcile import KINDS, MEANING, Report, reconcile_pairs
from vigil.remediations.vouchers.sources import (
    SourceError,
    library_spec,
    vouchers_of,
    window,
)


def _print(report: Report, lang: str) -> None:
    zh = lang == "zh"
    table = Table(title=(f"对账：{report.a} ↔ {report.b}（比对 {report.compared} 张凭证）" if zh
                         else f"Reconciliation {report.a} <-> {report.b} "
                              f"({report.compared} vouchers)"), title_justify="left")
    table.add_column("差异" if zh else "Discrepancy")
    table.add_column("数量" if zh else "Count", justify="right")
    table.add_column("示例" if zh else "Examples", overflow="fold")
    for kind in KINDS:
        text = MEANING[kind][0 if zh else 1].format(a=report.a, b=report.b)
        examples = ", ".join(s["number"] for s in report.samples.get(kind, [])[:5])
        table.add_row(text, str(report.counts[kind]), escape(examples))
    out.print(table)
    verdict = (("一致" if report.consistent else "不一致") if zh
               else ("consistent" if report.consistent else "NOT consistent"))
    out.print(f"{'结论' if zh else 'Result'}: {verdict}")
    for what, path in report.files.items():
        out.print(f"  {what}: {escape(path)}")


def reconcile_cmd(
        a: Annotated[str | None, typer.Argument(help="A party with a voucher library, or an "
                                                     "export file (.csv / .jsonl).")] = None,
        b: Annotated[str | None, typer.Argument(help="The other party or export.")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Finance against every other "
                                           "voucher library (three-way and more).")] = False,
        date: Annotated[str | None, typer.Option(help="One business date (YYYY-MM-DD).")]
        = None,
        since: Annotated[str | None, typer.Option(help="From this date or time.")] = None,
        until: Annotated[str | None, typer.Option(help="Until this date or time.")] = None,
        out_dir: Annotated[Path | None, typer.Option("--out", help="Where the discrepancy "
                                                     "log and resend lists go.")] = None,
        verify: Annotated[bool, typer.Option(
            "--verify", help="After recovery (P4.3.5(3)d): integrity, validity and "
            "consistency of every party's library, recorded as an event.")] = False,
        incident: Annotated[str | None, typer.Option(
            help="With --verify: the incident the verification belongs to.")] = None,
        encoding: Annotated[str | None, typer.Option(
            help="Export files' encoding, e.g. gb18030 for a bank's GBK export (default "
                 "UTF-8; a UTF-8 or UTF-16 byte-order mark is honoured).")] = None,
        inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
        lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Compare voucher libraries pairwise; exit 1 when they are not consistent."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)  # before any file is written: a bad store refuses first
    try:
        params = window(dt.date.fromisoformat(date) if date else None,
                        dt.datetime.fromisoformat(since) if since else None,
                        dt.datetime.fromisoformat(until) if until else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--date/--since/--until") from None
    all_ = all_ or verify
    if all_:
        hub = next((lib.party for lib in inv.voucher_libraries
                    if inv.parties[lib.party].kind is PartyKind.FINANCE_BUREAU), None)
        if hub is None:
            fail("--all needs the finance bureau's voucher library in the inventory")
        pairs = [(hub, lib.party) for lib in inv.voucher_libraries if lib.party != hub]
    elif a and b:
        pairs = [(a, b)]
    else:
        raise typer.BadParameter("give two parties (or exports), or --all")
    folder = out_dir or Path(f"reconcile-{clock.now():%Y%m%dT%H%M%S}")
    try:
        reports = reconcile_pairs([(library_spec(inv, left, encoding),
                                    library_spec(inv, right, encoding), params, folder)
                                   for left, right in pairs])
    except SourceError as exc:
        fail(str(exc))
    # Validity: vouchers sent or received but never signed, per party (finance is in
    # every pair, so its count is the largest any pair saw, not their sum).
    unsigned: Counter[str] = Counter()
    for r in reports:
        for party, n in r.unsigned.items():
            unsigned[party] = max(unsigned[party], n)
    unsigned = +unsigned
    verdict = None
    if verify:
        verdict = {
            "integrity": all(r.counts["differs"] == 0 for r in reports),  # digests agree
            "validity": not unsigned,  # every voucher that moved was signed
            "consistency": all(r.consistent for r in reports),
            "unsigned": dict(unsigned), "pairs": [f"{r.a}<->{r.b}" for r in reports]}
    with db.transaction() as tx:  # one command, one transaction
        for r in reports:
            tx.append("reconcile.done", f"{r.a}<->{r.b}",
                      {"compared": r.compared, "consistent": r.consistent,
                       "counts": dict(r.counts), "window": {k: str(v) for k, v in params.items()},
                       "files": r.files})
        if verdict is not None:
            tx.append("reconcile.verified", incident or "all-parties",
                      {**verdict, "incident": incident, "clause": "P4.3.5(3)"})
    if json_out:
        body: Any = [r.as_dict() for r in reports]
        if verdict is not None:
            body = {"verification": verdict, "reports": body}
        sys.stdout.write(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
    else:
        for r in reports:
            _print(r, lg)
        if verdict is not None:
            zh = lg == "zh"
            for what, name in (("integrity", ("完整性", "integrity")),
                               ("validity", ("有效性", "validity")),
                               ("consistency", ("一致性", "consistency"))):
                ok = verdict[what]
                out.print(f"{name[0 if zh else 1]}: "
                          f"{('通过' if ok else '不通过') if zh else ('ok' if ok else 'FAILED')}")
    ok = all(r.consistent for r in reports) and (verdict is None or verdict["validity"])
    raise typer.Exit(0 if ok else 1)


supplementary_app = typer.Typer(no_args_is_help=True,
                                help="Supplementary vouchers after an outage (P4.3.5(3)d).")


@supplementary_app.command("plan")
def supplementary_plan(
        outage_start: Annotated[str, typer.Option(help="Outage start (date or date-time).")],
        outage_end: Annotated[str, typer.Option(help="Outage end (date or date-time).")],
        party: Annotated[list[str] | None, typer.Option(
            help="Receiving parties (default: every other voucher library).")] = None,
        out_dir: Annotated[Path | None, typer.Option("--out")] = None,
        inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
        lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """What finance must re-sign and send as supplementary vouchers, party by party.

    Leaves out what a party already holds (it would be paid twice) and flags vouchers it
    holds with other content for people; marking is idempotent. Exit 1 when conflicts
    need a person.
    """
    from vigil.remediations.vouchers.supplementary import plan_all

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    try:
        start, end = dt.datetime.fromisoformat(outage_start), dt.datetime.fromisoformat(outage_end)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--outage-start/--outage-end") from None
    if end < start:
        raise typer.BadParameter("the outage ends before it starts", param_hint="--outage-end")
    params = window(None, start, end)
    hub = next((lib.party for lib in inv.voucher_libraries
                if inv.parties[lib.party].kind is PartyKind.FINANCE_BUREAU), None)
    if hub is None:
        fail("no voucher library of the finance bureau in the inventory")
    parties = party or [lib.party for lib in inv.voucher_libraries if lib.party != hub]
    db = open_store(store, lg)
    folder = out_dir or Path(f"supplementary-{clock.now():%Y%m%dT%H%M%S}")
    try:
        plans = plan_all(db, {name: (vouchers_of(inv, hub, params), vouchers_of(inv, name, params))
                              for name in parties}, folder,
                         f"{start.isoformat()}/{end.isoformat()}")
    except SourceError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps([pl.__dict__ for pl in plans], ensure_ascii=False,
                                    indent=2) + "\n")
    else:
        zh = lg == "zh"
        for pl in plans:
            out.print(
                (f"{pl.party}：新标记补录凭证 {len(pl.supplementary)} 张，此前已标记 "
                 f"{pl.already_marked} 张，对方已有（不得重发）{pl.already_held} 张，"
                 f"内容冲突需人工处理 {len(pl.conflicts)} 张；清单 {pl.file}") if zh else
                (f"{pl.party}: {len(pl.supplementary)} newly marked supplementary, "
                 f"{pl.already_marked} marked before, {pl.already_held} already held (not "
                 f"resent), {len(pl.conflicts)} conflicts for people; list {pl.file}"))
            for number, fields in pl.conflicts[:20]:
                out.print(f"  ! {number}: {fields}")
    raise typer.Exit(1 if any(pl.conflicts for pl in plans) else 0)
