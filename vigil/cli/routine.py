"""`vigil routine list | done`: people's work on a schedule (P3.2.2), on record."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vigil import clock
from vigil.cli.common import (
    EXIT_REFUSED,
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
    pick_lang,
)
from vigil.cli.identity import AsOpt, OverrideOpt, ReasonOpt, who
from vigil.identity import become
from vigil.remediations import routines

routine_app = typer.Typer(no_args_is_help=True, help=(
    "The plan's routines: people's work on a schedule (P3.2.2: the backup business system "
    "kept ready), opened by the monitor when due, ticked off with a note."))


_STATE = {"open": "待办", "done": "已完成", "never done": "从未完成"}


@routine_app.command("list")
def routine_list(inventory: InventoryOpt = None, store: StoreOpt = None,
                 json_out: JsonOpt = False, lang: LangOpt = None,
                 vault_password_file: VaultOpt = None) -> None:
    """Each routine: open or done, when and by whom last, when next due."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    rows = routines.state(open_store(store, lg), inv, clock.now())
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    zh = lg == "zh"
    table = Table(title_justify="left")
    for col in (("例行事项", "Routine"), ("条款", "Clause"), ("内容", "What"), ("状态", "State"),
                ("上次完成", "Last done"), ("记录", "Note"), ("下次到期", "Next due")):
        table.add_column(col[0] if zh else col[1], overflow="fold")
    for r in rows:
        state = (_STATE.get(r["status"], r["status"]) if zh else r["status"]) + \
            (" ⚠" if r["overdue"] else "")
        table.add_row(r["id"], r["clause"], escape(r["text"] if zh else r["text_en"]), state,
                      f"{local(r['done_at'], inv)} {r['done_by'] or ''}".strip(),
                      escape(r["note"] or ""), local(r["next_due"], inv))
    out.print(table)


@routine_app.command("done")
def routine_done(routine: Annotated[str, typer.Argument(help="The routine's id.")],
                 note: Annotated[str, typer.Option(help="What you found: the record.")],
                 as_: AsOpt = None, override: OverrideOpt = False, why: ReasonOpt = None,
                 inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
                 vault_password_file: VaultOpt = None) -> None:
    """Tick a routine off with what you found (exit 4: your role may not)."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    try:
        routines.done(db, inv, routine, actor.contact, note, clock.now())
    except routines.RoutineRefused as exc:
        fail(str(exc))
    except PermissionError as exc:
        err.print(f"[bold red]vigil:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    out.print(f"已登记 {routine}" if lg == "zh" else f"recorded {routine}")
