"""`vigil status`, `vigil incidents list | show`, `vigil ack`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from vigil import clock, keys
from vigil.alerting import reported
from vigil.alerting.incidents import (
    Incident,
    Tracker,
    acknowledge,
    events_about,
    load_incident,
    load_incidents,
)
from vigil.alerting.messages import duration_text
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    err,
    fail,
    load_inv,
    local,
    open_store,
    out,
    parse_time,
    pick_lang,
)
from vigil.cli.identity import AsOpt, OverrideOpt, ReasonOpt, who
from vigil.cli.monitors import leader_line, leader_view
from vigil.cli.steps import print_steps, step_rows
from vigil.clock import local_text
from vigil.domain import Level
from vigil.i18n import t
from vigil.identity import become
from vigil.model import Inventory
from vigil.remediations import routines
from vigil.remediations.drills import overdue
from vigil.store import Store

incidents_app = typer.Typer(no_args_is_help=True, help="Incidents and their timelines.")


def _incident_rows(tracker: Tracker, incs: list[Incident], now: dt.datetime,
                   lang: str) -> list[dict[str, Any]]:
    rows = []
    for inc in incs:
        onset = dt.datetime.fromisoformat(inc["onset"])
        row = {"id": inc["id"], "system": inc["system"], "fault_class": inc["fault_class"],
               "status": inc["status"], "mark": inc["mark"], "onset": inc["onset"],
               "age_s": round((now - onset).total_seconds()), "cause": inc["cause"],
               "next_mark": None, "next_at": None, "drill": inc.get("drill")}
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
            nxt = f"{Level(r['next_mark']).text(lang)} {local_text(at, tz)}（{left}）"
        level = Level(r["mark"]).text(lang) if r["mark"] else "-"
        if r.get("drill"):  # a drill's, not a real fault
            level = f"{'【演练】' if zh else '[DRILL] '}{level}"
        if r["status"] != "open":
            level += "，已恢复" if zh else ", recovered"
        table.add_row(escape(r["id"]), level,
                      local_text(r["onset"], tz),
                      duration_text(r["age_s"], lang), nxt, escape(r["cause"] or ""))
    out.print(table)


def status(inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
           lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Open incidents with level, age and time to the next level; outbox and daemon health."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    tracker = Tracker(inv, db)
    now = clock.now()
    rows = _incident_rows(tracker, list(tracker.open.values()), now, lg)
    pending = len(db.states(keys.PENDING))
    started = db.events(kind="daemon.started")
    stopped = db.events(kind="daemon.stopped")
    running = bool(started) and (not stopped or stopped[-1].seq < started[-1].seq)
    warnings = tracker.calendar.warnings(now.astimezone(tracker.tz).date())
    under_way = step_rows(db, None, False)  # runs, approvals and people's tasks not finished
    leading = leader_view(db)
    undrilled = overdue(db, inv, now)
    due = [r for r in routines.state(db, inv, now) if r["overdue"]]
    if json_out:
        sys.stdout.write(json.dumps({"open_incidents": rows, "steps": under_way,
                                     "undrilled_fault_classes": undrilled,
                                     "routines_due": due,
                                     "leader": {k: leading[k] for k in ("leader", "since",
                                                                       "epoch")},
                                     "monitors": leading["monitors"],
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
    out.print(escape(leader_line(leading, tracker.tz, lg)))
    for en, zh_text in warnings:
        err.print(f"[yellow]{escape(zh_text if zh else en)}[/]")
    if undrilled:  # P3.2.3: periodic drills
        err.print("[yellow]" + escape(
            (f"{inv.drill_interval_days} 天内未演练的故障类别：" if zh else
             f"fault classes not drilled within {inv.drill_interval_days} days: ") +
            ", ".join(undrilled) + "（P3.2.3；vigil drill run）") + "[/]")
    for r in due:
        err.print("[yellow]" + escape(
            f"例行事项待办：{r['text']}（{r['clause']}；vigil routine done {r['id']}）" if zh
             else f"routine due: {r['text_en']} ({r['clause']}; vigil routine done "
                  f"{r['id']})") + "[/]")
    if rows:
        _print_incidents(rows, tracker.tz, now, lg)
    if under_way:
        print_steps(under_way, lg, inv)


@incidents_app.command("list")
def incidents_list(inventory: InventoryOpt = None, store: StoreOpt = None,
                   all_: Annotated[bool, typer.Option("--all", help="Recovered ones too.")]
                   = False, json_out: JsonOpt = False, lang: LangOpt = None,
                   vault_password_file: VaultOpt = None) -> None:
    """Incidents, newest first."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    tracker = Tracker(inv, db)
    incs = load_incidents(db, open_only=not all_)
    incs.sort(key=lambda i: i["onset"], reverse=True)
    rows = _incident_rows(tracker, incs, clock.now(), lg)
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        _print_incidents(rows, tracker.tz, clock.now(), lg)


@incidents_app.command("show")
def incidents_show(incident: Annotated[str, typer.Argument(help="Incident id.")],
                   inventory: InventoryOpt = None, store: StoreOpt = None,
                   json_out: JsonOpt = False, lang: LangOpt = None,
                   vault_password_file: VaultOpt = None) -> None:
    """One incident's timeline (in the site's local time): every event about it and every
    message it caused."""
    lg = pick_lang(lang)
    tz = ZoneInfo(load_inv(inventory, vault_password_file, lg).site.timezone)
    db = open_store(store, lg)
    inc = load_incident(db, incident)
    if inc is None:
        fail(f"no incident {incident!r}")
    timeline = events_about(db, [incident])
    if json_out:
        sys.stdout.write(json.dumps({"incident": inc, "timeline": [e.__dict__ for e in timeline]},
                                    ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=incident, title_justify="left")
    for col in ("seq", "at", "kind", "subject"):
        table.add_column(t(f"col.{col}", lg), overflow="fold")
    table.add_column(t("col.data", lg), overflow="fold")
    for e in timeline:
        table.add_row(str(e.seq), local_text(e.at, tz, seconds=True), e.kind,
                      escape(e.subject[-60:]), escape(_detail(e.data, lg)))
    out.print(table)


NoteOpt = Annotated[str, typer.Option("--note", help="What you found or did: recorded and sent.")]


@incidents_app.command("open")
def incidents_open(system: Annotated[str, typer.Option("--system", help="The system's id.")],
                   note: NoteOpt, as_: AsOpt = None, override: OverrideOpt = False,
                   why: ReasonOpt = None,
                   since: Annotated[str, typer.Option(
                       "--since", help="When it began: now (default), 2h (ago) or "
                       "2026-12-03 08:30 (site time).")] = "now",
                   inventory: InventoryOpt = None, store: StoreOpt = None,
                   json_out: JsonOpt = False, lang: LangOpt = None,
                   vault_password_file: VaultOpt = None) -> None:
    """Report a fault you found (P4.2): the monitor opens its incident with your onset, and
    the ladder and the plan's steps follow as for a detected one."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    now = clock.now()
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    try:
        rep = reported.report(db, inv, system=system, note=note, by=actor.contact, now=now,
                              since=parse_time(since, inv, now, past=True))
    except (reported.ReportRefused, PermissionError) as exc:
        fail(str(exc))
    _said(rep, db, inv, json_out, lg)


@incidents_app.command("close")
def incidents_close(incident: Annotated[str, typer.Argument(help="Incident id.")],
                    note: NoteOpt, as_: AsOpt = None, override: OverrideOpt = False,
                    why: ReasonOpt = None, inventory: InventoryOpt = None,
                    store: StoreOpt = None, json_out: JsonOpt = False, lang: LangOpt = None,
                    vault_password_file: VaultOpt = None) -> None:
    """Withdraw a reported fault once mended: its incident recovers when no detected check
    of it still fails."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    try:
        rep = reported.withdraw(db, inv, incident=incident, note=note, by=actor.contact,
                                now=clock.now())
    except (reported.ReportRefused, PermissionError) as exc:
        fail(str(exc))
    _said(rep, db, inv, json_out, lg)


def _said(rep: reported.Report, db: Store, inv: Inventory, json_out: bool, lang: str) -> None:
    """What a report became, and when it takes effect (the leading daemon takes it)."""
    leading = leader_view(db)
    if json_out:
        sys.stdout.write(json.dumps({**rep, "leader": leading["leader"]}, ensure_ascii=False,
                                    indent=2) + "\n")
        return
    zh = lang == "zh"
    opened = rep["action"] == "open"
    if zh:
        out.print(f"已记录 {rep['id']}：{escape(rep['system'])} "
                  f"{'故障自 ' + local(rep['since'], inv) if opened else '故障已排除'}")
    else:
        out.print(f"recorded {rep['id']}: {escape(rep['system'])} "
                  f"{'fault since ' + local(rep['since'], inv) if opened else 'mended'}")
    if leading["leader"]:
        out.print("监控守护进程将在下一轮检查时处理。" if zh else
                  "The leading monitor takes it on its next cycle.")
    else:
        err.print("[yellow]" + ("没有正在运行的监控守护进程：启动 vigil watch 后才会处理。" if zh
                                else "No monitoring daemon leads: it is taken when "
                                "`vigil watch` runs.") + "[/]")


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


def ack(incident: Annotated[str, typer.Argument(help="Incident id.")],
        as_: AsOpt = None, override: OverrideOpt = False, why: ReasonOpt = None,
        inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
        vault_password_file: VaultOpt = None) -> None:
    """Acknowledge an incident: repeats stop at its current level, the next level notifies
    (another party's staff, told of it, confirm receipt: the reminders go on)."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    try:
        acked = acknowledge(db, inv, incident, actor.contact, clock.now())
    except (LookupError, PermissionError) as exc:
        fail(str(exc))
    level = Level(acked.mark).text(lg)
    if acked.quiets:
        out.print(f"已确认 {incident}（{level}），确认人 {actor.contact}" if lg == "zh"
                  else f"acknowledged {incident} at {level} as {actor.contact}")
    else:
        out.print(f"已记录 {actor.contact} 收到 {incident}（{level}）；提醒照常发给处置方"
                  if lg == "zh" else f"recorded that {actor.contact} received {incident} at "
                  f"{level}; the reminders go on to those working on it")

