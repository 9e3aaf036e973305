"""CLI for the watch daemon and its incidents: watch, status, incidents, ack, ladder."""

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
from vigil.alerting.incidents import Tracker, acknowledge, calendar_for
from vigil.alerting.ladder import LadderConfig, rungs
from vigil.alerting.messages import duration_text, level_name
from vigil.cli import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    ProjectOpt,
    StoreOpt,
    VaultOpt,
    _fail,
    _lang,
    _load,
    _open_store,
    _project,
    app,
    err,
    out,
)
from vigil.i18n import t

incidents_app = typer.Typer(no_args_is_help=True, help="Incidents and their timelines.")
ladder_app = typer.Typer(no_args_is_help=True, help="The escalation ladder of P4.1.")
app.add_typer(incidents_app, name="incidents")
app.add_typer(ladder_app, name="ladder")


@app.command()
def watch(inventory: InventoryOpt = None, store: StoreOpt = None,
          metrics_port: Annotated[int | None, typer.Option(
              help="Serve Prometheus metrics on 127.0.0.1:PORT.")] = None,
          limit: Annotated[str | None, typer.Option(
              "--limit", "-l", help="Only these hosts, groups, systems or checks (globs).")]
          = None,
          dry_run: Annotated[bool, typer.Option(
              "--dry-run", help="Run remediation playbooks in check mode only.")] = False,
          observe_only: Annotated[bool, typer.Option(
              "--observe-only", help="Run no remediation; record what would run.")] = False,
          project: ProjectOpt = None, vault_password_file: VaultOpt = None) -> None:
    """The daemon: run checks on schedule, grade incidents, carry out the runbook, deliver
    messages. Stops on SIGTERM."""
    import signal

    from vigil.daemon import Daemon, setup_logging
    from vigil.remediations.executor import Executor

    # Until the daemon takes over the signals, a SIGTERM during start-up exits cleanly:
    # nothing is running yet, and an open transaction rolls back.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    lg = _lang(None)
    inv = _load(inventory, vault_password_file, lg)
    if limit:
        inv = inv.model_copy(update={"checks": inv.limit(limit)})
    db = _open_store(store, lg)
    executor = Executor(inv, db, dry_run=dry_run, observe_only=observe_only or None,
                        project=None if observe_only else _project(project, inv))
    setup_logging()
    Daemon(inv, db, metrics_port=metrics_port, executor=executor).run()


def _when(value: str | None, tz: ZoneInfo, what: str) -> dt.datetime:
    if value is None:
        return clock.now()
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date and time: {value!r} (e.g. 2026-09-30T16:00)",
                                 param_hint=what) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _incident_rows(tracker: Tracker, incs: list[dict[str, Any]], now: dt.datetime,
                   lang: str) -> list[dict[str, Any]]:
    rows = []
    for inc in incs:
        onset = dt.datetime.fromisoformat(inc["onset"])
        row = {"id": inc["id"], "system": inc["system"], "fault_class": inc["fault_class"],
               "status": inc["status"], "mark": inc["mark"], "onset": inc["onset"],
               "age_s": round((now - onset).total_seconds()), "cause": inc["cause"],
               "next_mark": None, "next_at": None}
        if inc["status"] == "open":
            rung, ahead = tracker.reached(inc, now)
            row["mark"] = rung.mark
            if ahead:
                row["next_mark"], row["next_at"] = ahead.mark, ahead.at.isoformat()
        rows.append(row)
    return rows


def _print_incidents(rows: list[dict[str, Any]], tz: ZoneInfo, now: dt.datetime,
                     lang: str) -> None:
    zh = lang == "zh"
    table = Table(title_justify="left")
    for col in (("事件", "Incident"), ("级别", "Level"), ("发生于", "Since"),
                ("已持续", "Lasted"), ("下一级", "Next level"), ("原因", "Caused by")):
        table.add_column(col[0] if zh else col[1], overflow="fold")
    for r in rows:
        nxt = ""
        if r["next_at"]:
            at = dt.datetime.fromisoformat(r["next_at"])
            left = duration_text((at - now).total_seconds(), lang)
            nxt = f"{level_name(r['next_mark'], lang)} {at.astimezone(tz):%m-%d %H:%M}（{left}）"
        level = level_name(r["mark"], lang) if r["mark"] else "-"
        if r["status"] != "open":
            level += "，已恢复" if zh else ", recovered"
        table.add_row(escape(r["id"]), level,
                      f"{dt.datetime.fromisoformat(r['onset']).astimezone(tz):%Y-%m-%d %H:%M}",
                      duration_text(r["age_s"], lang), nxt, escape(r["cause"] or ""))
    out.print(table)


@app.command()
def status(inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
           lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Open incidents with level, age and time to the next level; outbox and daemon health."""
    lg = _lang(lang)
    inv = _load(inventory, vault_password_file, lg)
    db = _open_store(store, lg)
    tracker = Tracker(inv, db)
    now = clock.now()
    rows = _incident_rows(tracker, list(tracker.open.values()), now, lg)
    pending = len(db.states("pending:"))
    started = db.events(kind="daemon.started")
    stopped = db.events(kind="daemon.stopped")
    running = bool(started) and (not stopped or stopped[-1].seq < started[-1].seq)
    warnings = tracker.calendar.warnings(now.astimezone(tracker.tz).date())
    from vigil.cli_steps import print_steps, step_rows

    under_way = step_rows(db, None, False)  # runs, approvals and people's tasks not finished
    if json_out:
        sys.stdout.write(json.dumps({"open_incidents": rows, "steps": under_way,
                                     "outbox_pending": pending,
                                     "daemon_started": started[-1].at if started else None,
                                     "daemon_running": running,
                                     "calendar_warnings": [w[0] for w in warnings]},
                                    ensure_ascii=False, indent=2) + "\n")
        return
    zh = lg == "zh"
    out.print((f"站点：{inv.site.name.get(lg)}；未恢复事件 {len(rows)} 个；"
               f"待发送消息 {pending} 条；守护进程{'运行中' if running else '未运行'}") if zh else
              (f"Site: {inv.site.name.get(lg)}; open incidents {len(rows)}; messages pending "
               f"{pending}; daemon {'running' if running else 'not running'}"))
    for en, zh_text in warnings:
        err.print(f"[yellow]{escape(zh_text if zh else en)}[/]")
    if rows:
        _print_incidents(rows, tracker.tz, now, lg)
    if under_way:
        print_steps(under_way, lg)


@incidents_app.command("list")
def incidents_list(inventory: InventoryOpt = None, store: StoreOpt = None,
                   all_: Annotated[bool, typer.Option("--all", help="Recovered ones too.")]
                   = False, json_out: JsonOpt = False, lang: LangOpt = None,
                   vault_password_file: VaultOpt = None) -> None:
    """Incidents, newest first."""
    lg = _lang(lang)
    inv = _load(inventory, vault_password_file, lg)
    db = _open_store(store, lg)
    tracker = Tracker(inv, db)
    incs = [i for i in db.states("incident:").values() if all_ or i["status"] == "open"]
    incs.sort(key=lambda i: i["onset"], reverse=True)
    rows = _incident_rows(tracker, incs, clock.now(), lg)
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        _print_incidents(rows, tracker.tz, clock.now(), lg)


@incidents_app.command("show")
def incidents_show(incident: Annotated[str, typer.Argument(help="Incident id.")],
                   store: StoreOpt = None, json_out: JsonOpt = False,
                   lang: LangOpt = None) -> None:
    """One incident's timeline: every event about it and every message it caused."""
    lg = _lang(lang)
    db = _open_store(store, lg)
    inc = db.get_state(f"incident:{incident}")
    if inc is None:
        _fail(f"no incident {incident!r}")
    timeline = [e for e in db.events()
                if e.subject == incident or e.data.get("incident") == incident
                or e.subject.startswith(f"{incident}/")]
    if json_out:
        sys.stdout.write(json.dumps({"incident": inc, "timeline": [e.__dict__ for e in timeline]},
                                    ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=incident, title_justify="left")
    for col in ("seq", "at", "kind", "subject"):
        table.add_column(t(f"col.{col}", lg), overflow="fold")
    table.add_column(t("col.data", lg), overflow="fold")
    for e in timeline:
        table.add_row(str(e.seq), e.at[:19], e.kind, escape(e.subject[-60:]),
                      escape(_detail(e.data, lg)))
    out.print(table)


def _detail(data: dict[str, Any], lang: str) -> str:
    """The one thing worth reading in an event, for the timeline's last column."""
    if "task" in data:  # a playbook task: what ran, where, how it ended
        return f"{data['task']} @ {data.get('host', '')}: {data.get('status', '')}"
    text = data.get("text_zh") if lang == "zh" else None
    for value in (data.get("mark"), data.get("error"), data.get("title"), data.get("message"),
                  data.get("by"), data.get("why"), text or data.get("text"),
                  data.get("playbook")):
        if value:
            return str(value)
    return ""


@app.command()
def ack(incident: Annotated[str, typer.Argument(help="Incident id.")],
        as_: Annotated[str, typer.Option("--as", help="Your contact id in the inventory.")],
        inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
        vault_password_file: VaultOpt = None) -> None:
    """Acknowledge an incident: repeats stop at its current level; the next level notifies."""
    lg = _lang(lang)
    inv = _load(inventory, vault_password_file, lg)
    db = _open_store(store, lg)
    try:
        mark = acknowledge(db, inv, incident, as_, clock.now(),
                           lambda i: db.get_state(f"incident:{i}"))
    except (LookupError, PermissionError) as exc:
        _fail(str(exc))
    out.print(f"已确认 {incident}（{level_name(mark, lg)}），确认人 {as_}" if lg == "zh"
              else f"acknowledged {incident} at {level_name(mark, lg)} as {as_}")


@ladder_app.command("explain")
def ladder_explain(onset: Annotated[str, typer.Option(help="When the fault began, e.g. "
                                                           "2026-09-30T16:00 (site time).")],
                   now: Annotated[str | None, typer.Option(help="Default: the clock.")] = None,
                   inventory: InventoryOpt = None, json_out: JsonOpt = False,
                   lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """When each level is reached for a fault that began at ONSET, and why."""
    lg = _lang(lang)
    inv = _load(inventory, vault_password_file, lg)
    tz = ZoneInfo(inv.site.timezone)
    calendar = calendar_for(inv)
    start, moment = _when(onset, tz, "--onset"), _when(now, tz, "--now")
    ladder = rungs(start, calendar, tz, LadderConfig(**inv.ladder.model_dump()))
    days: list[dict[str, Any]] = []
    day = start.astimezone(tz).date()
    while day < ladder[-1].at.date():
        day += dt.timedelta(days=1)
        en, zh = calendar.why(day)
        days.append({"date": day.isoformat(), "working": calendar.is_workday(day),
                     "why": zh if lg == "zh" else en})
    rows = [{"mark": r.mark, "level": r.level.value, "at": r.at.isoformat(),
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
        table.add_row(level_name(r.mark, lg), f"{r.at:%Y-%m-%d %H:%M %a}", str(row["rule"]),
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
