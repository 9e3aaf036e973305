"""`vigil ladder explain`: when each level of P4.1 is reached, and why."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from vigil import clock
from vigil.alerting.incidents import calendar_for
from vigil.alerting.ladder import rungs
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    VaultOpt,
    err,
    load_inv,
    out,
    pick_lang,
)

ladder_app = typer.Typer(no_args_is_help=True, help="The escalation ladder of P4.1.")


def _when(value: str | None, tz: ZoneInfo, what: str) -> dt.datetime:
    if value is None:
        return clock.now()
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date and time: {value!r} (e.g. 2026-09-30T16:00)",
                                 param_hint=what) from None
    if not 2000 <= moment.year <= 2100:  # the ladder walks the calendar from there
        raise typer.BadParameter(f"{value!r} is outside the years 2000 to 2100",
                                 param_hint=what)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


@ladder_app.command("explain")
def ladder_explain(onset: Annotated[str, typer.Option(help="When the fault began, e.g. "
                                                           "2026-09-30T16:00 (site time).")],
                   now: Annotated[str | None, typer.Option(help="Default: the clock.")] = None,
                   inventory: InventoryOpt = None, json_out: JsonOpt = False,
                   lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """When each level is reached for a fault that began at ONSET, and why."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    tz = ZoneInfo(inv.site.timezone)
    calendar = calendar_for(inv)
    start, moment = _when(onset, tz, "--onset"), _when(now, tz, "--now")
    ladder = rungs(start, calendar, tz, inv.ladder)
    days: list[dict[str, Any]] = []
    day = start.astimezone(tz).date()
    while day < ladder[-1].at.date():
        day += dt.timedelta(days=1)
        en, zh = calendar.why(day)
        days.append({"date": day.isoformat(), "working": calendar.is_workday(day),
                     "why": zh if lg == "zh" else en})
    rows = [{"mark": r.mark, "level": r.mark.plan_level.value, "at": r.at.isoformat(),
             "reached": r.at <= moment.astimezone(tz),
             "rule": r.rule_zh if lg == "zh" else r.rule_en} for r in ladder]
    warnings = [w[1] if lg == "zh" else w[0] for w in calendar.warnings(start.date())]
    if json_out:
        sys.stdout.write(json.dumps({"onset": start.isoformat(), "now": moment.isoformat(),
                                     "rungs": rows, "days": days, "warnings": warnings},
                                    ensure_ascii=False, indent=2) + "\n")
        return
    is_zh = lg == "zh"
    table = Table(title=(f"故障发生于 {start.astimezone(tz):%Y-%m-%d %H:%M %Z}" if is_zh
                         else f"Fault since {start.astimezone(tz):%Y-%m-%d %H:%M %Z}"),
                  title_justify="left")
    for col in (("级别", "Level"), ("到达时间", "Reached at"), ("规则", "Rule"), ("", "")):
        table.add_column(col[0] if is_zh else col[1])
    for r, row in zip(ladder, rows, strict=True):
        mark = ("已到达" if is_zh else "reached") if row["reached"] else ""
        table.add_row(r.mark.text(lg), f"{r.at:%Y-%m-%d %H:%M %a %Z}", str(row["rule"]),
                      mark)
    out.print(table)
    counted = Table(title="日历" if is_zh else "Calendar", title_justify="left")
    for col in (("日期", "Date"), ("工作日", "Working day"), ("原因", "Why")):
        counted.add_column(col[0] if is_zh else col[1])
    for d in days:
        working = ("是" if is_zh else "yes") if d["working"] else ("否" if is_zh else "no")
        counted.add_row(str(d["date"]), working, str(d["why"]))
    out.print(counted)
    for w in warnings:
        err.print(f"[yellow]{escape(w)}[/]")

