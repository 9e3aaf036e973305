"""`vigil silence add | list | end`: maintenance windows (alerting.silences)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vigil import clock
from vigil.alerting import silences
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    fail,
    load_inv,
    local,
    open_store,
    out,
    parse_time,
    pick_lang,
)
from vigil.cli.identity import AsOpt, OverrideOpt, ReasonOpt, who
from vigil.identity import become
from vigil.model import Inventory

silence_app = typer.Typer(no_args_is_help=True, help=(
    "Maintenance windows: a system's faults recorded, nobody paged, its automatic steps "
    "waiting, until the window ends."))



@silence_app.command("add")
def add(system: Annotated[str, typer.Option("--system", help="The system's id.")],
        until: Annotated[str, typer.Option("--until", help="2h, 1d, or 2026-12-03 20:00.")],
        reason: Annotated[str, typer.Option("--reason", help="Why: recorded and shown (also "
                                            "the reason of --override-identity).")],
        as_: AsOpt = None, override: OverrideOpt = False,
        start: Annotated[str, typer.Option("--from", help="now (default) or a time.")] = "now",
        steps: Annotated[bool, typer.Option(
            "--steps", help="Let the plan's automatic steps run during the window.")] = False,
        inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
        lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Silence a system for a window: its faults are recorded and shown, nobody is paged
    until the window ends (then an incident still open pages as if it had just opened)."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    now = clock.now()
    db = open_store(store, lg)
    actor = who(as_, override, reason, inv, db, lg, now)
    become(actor)
    try:
        s = silences.add(db, inv, system=system,
                         start=parse_time(start, inv, now), until=parse_time(until, inv, now),
                         reason=reason, by=actor.contact, steps=steps, now=now)
    except (silences.SilenceRefused, PermissionError) as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps(s, ensure_ascii=False) + "\n")
        return
    window = f"{local(s['start'], inv)} – {local(s['until'], inv)}"
    out.print(escape(f"已静默 {system}（{window}），编号 {s['id']}" if lg == "zh" else
                     f"silenced {system} ({window}), id {s['id']}"))


@silence_app.command("end")
def end(silence_id: Annotated[str, typer.Argument(help="The silence's id.")],
        as_: AsOpt = None, override: OverrideOpt = False, why: ReasonOpt = None,
        inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
        vault_password_file: VaultOpt = None) -> None:
    """End a window before its time."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    try:
        s = silences.end(db, inv, silence_id, actor.contact, clock.now())
    except (silences.SilenceRefused, PermissionError) as exc:
        fail(str(exc))
    out.print(escape(f"已结束静默 {s['id']}（{s['system']}）" if lg == "zh" else
                     f"ended silence {s['id']} ({s['system']})"))


@silence_app.command("list")
def list_(all_: Annotated[bool, typer.Option(
        "--all", help="Past windows too (of the last 30 days; every one is in the event "
        "log).")] = False,
          inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
          lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """The windows in force (and to come); --all: the past ones too."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    now = clock.now()
    shown = [s for s in silences.load(open_store(store, lg)) if all_ or (
        s["ended"] is None and dt.datetime.fromisoformat(s["until"]) > now)]
    if json_out:
        sys.stdout.write(json.dumps(shown, ensure_ascii=False, indent=2) + "\n")
        return
    zh = lg == "zh"
    table = Table("编号" if zh else "id", "系统" if zh else "system", "自" if zh else "from",
                  "至" if zh else "until", "设置人" if zh else "by", "原因" if zh else "reason",
                  "状态" if zh else "state")
    for s in shown:
        table.add_row(s["id"], s["system"], local(s["start"], inv), local(s["until"], inv),
                      s["by"], escape(s["reason"]), _state(s, inv, now, zh))
    out.print(table)


def _state(s: silences.Silence, inv: Inventory, now: dt.datetime, zh: bool) -> str:
    if s["ended"]:
        return f"已结束 {local(s['ended'], inv)}" if zh else f"ended {local(s['ended'], inv)}"
    if silences.is_active(s, now):
        return "生效" if zh else "in force"
    if dt.datetime.fromisoformat(s["start"]) > now:
        return "未开始" if zh else "to come"
    return "已到期" if zh else "expired"
