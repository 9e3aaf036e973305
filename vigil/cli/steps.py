"""`vigil steps`, `vigil approve`, `vigil deny`, `vigil task done`: people and the
runbook's steps."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

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
    fail,
    load_inv,
    open_store,
    out,
    pick_lang,
)
from vigil.cli.identity import AsOpt, OverrideOpt, ReasonOpt, who
from vigil.clock import local_text
from vigil.domain import FaultClass
from vigil.i18n import Lang
from vigil.identity import become
from vigil.model import Inventory
from vigil.remediations import steps

task_app = typer.Typer(no_args_is_help=True, help="Manual steps of the plan: people's checklist.")


StepArg = Annotated[str, typer.Argument(help="INCIDENT/LEVEL/STEP, or a STEP id waiting "
                                             "in one incident only.")]




_STATUS = {"pending": "待执行", "running": "执行中", "succeeded": "已成功", "failed": "已失败",
           "awaiting": "待审批", "denied": "已拒绝", "expired": "已过期", "open": "待办",
           "done": "已完成", "sent": "已通知", "observed": "仅观察", "dry-run": "试运行",
           "skipped": "不适用", "held": "静默中待发"}


def status_text(status: str, lang: str) -> str:
    return _STATUS.get(status, status) if lang == "zh" else status


def _act(action: Callable[..., steps.StepRecord], ref: str, who_: tuple[Any, bool, Any],
         inventory: Any, store: Any, vault: Any, lang: Lang, *extra: str) -> steps.StepRecord:
    inv = load_inv(inventory, vault, lang)
    db = open_store(store, lang)
    actor = who(*who_, inv, db, lang, clock.now())
    become(actor)
    try:
        return action(db, inv, inv.site_runbook, ref, actor.contact, *extra, clock.now())
    except steps.StepError as exc:
        fail(str(exc))
    except PermissionError as exc:
        out.print(f"[red]{'拒绝' if lang == 'zh' else 'refused'}: {escape(str(exc))}[/]")
        raise typer.Exit(EXIT_REFUSED) from None


def approve(step: StepArg, as_: AsOpt = None, override: OverrideOpt = False,
            why: ReasonOpt = None, inventory: InventoryOpt = None, store: StoreOpt = None,
            lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Approve a step of the plan that waits for approval (exit 4: you may not)."""
    lg = pick_lang(lang)
    rec = _act(steps.approve, step, (as_, override, why), inventory, store,
               vault_password_file, lg)
    out.print(f"{rec['key']}: {status_text(rec['status'], lg)} "
              f"({', '.join(a['by'] for a in rec['approvals'])})")
    if rec["status"] == "expired":
        raise typer.Exit(5)


def deny(step: StepArg, as_: AsOpt = None, override: OverrideOpt = False,
         reason: Annotated[str, typer.Option(help="Why (goes on record; also the reason of "
                                                  "--override-identity).")] = "",
         inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
         vault_password_file: VaultOpt = None) -> None:
    """Deny a step that waits for approval; nothing of it runs."""
    lg = pick_lang(lang)
    rec = _act(steps.deny, step, (as_, override, reason), inventory, store,
               vault_password_file, lg, reason)
    out.print(f"{rec['key']}: {status_text(rec['status'], lg)}")


@task_app.command("done")
def task_done(step: StepArg, as_: AsOpt = None, override: OverrideOpt = False,
              why: ReasonOpt = None,
              note: Annotated[str, typer.Option(help="What was done (goes on record).")] = "",
              inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
              vault_password_file: VaultOpt = None) -> None:
    """Tick off a manual step (paper vouchers, courier, payroll by hand...)."""
    lg = pick_lang(lang)
    rec = _act(steps.done, step, (as_, override, why), inventory, store, vault_password_file,
               lg, note)
    out.print(f"{rec['key']}: {status_text(rec['status'], lg)} ({rec.get('done_by')})")


def step_rows(db: Any, incident: str | None, all_: bool) -> list[steps.StepRecord]:
    rows = [r for r in steps.load_steps(db)
            if (incident is None or r["incident"] == incident)
            and (all_ or r["status"] not in steps.FINAL)]
    return sorted(rows, key=lambda r: (r["incident"], r["planned_at"], r["key"]))


def steps_list(incident: Annotated[str | None, typer.Argument(help="One incident.")] = None,
               all_: Annotated[bool, typer.Option("--all", help="Finished steps too.")] = False,
               inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
               lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """The plan's steps under way: runs, approvals waited for, people's tasks."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    rows = step_rows(db, incident, all_ or incident is not None)
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    print_steps(rows, lg, inv)


def print_steps(rows: list[steps.StepRecord], lg: str, inv: Inventory) -> None:
    zh = lg == "zh"
    table = Table(title="预案步骤" if zh else "Plan steps", title_justify="left")
    for col in (("步骤", "Step"), ("内容", "What"), ("条款", "Clause"), ("方式", "Kind"),
                ("状态", "Status"), ("次数", "Tries"), ("说明", "Note")):
        table.add_column(col[0] if zh else col[1], overflow="fold")
    for r in rows:
        note = r.get("last") or ", ".join(a["by"] for a in r.get("approvals", [])) or \
            r.get("done_by") or ""
        if r["status"] in steps.DECIDING and r.get("expires_at"):
            until = local_text(r.get("expires_at"), inv.site.timezone)
            note = f"{note}；有效期至 {until}" if zh else f"{note}; expires {until}"
        step = inv.site_runbook.step(FaultClass(r["fault_class"]), r["level"], r["step"])
        table.add_row(escape(r["key"]), escape(step.text(lg) if step else ""), r["clause"],
                      r["kind"], status_text(r["status"], lg), str(r["attempts"]),
                      escape(str(note).lstrip("；; ")))
    out.print(table)

