"""`vigil plan show | coverage`: the runbook (the plan as data) for people."""

from __future__ import annotations

import json
import sys
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
    ProjectOpt,
    StoreOpt,
    VaultOpt,
    err,
    fail,
    load_inv,
    open_store,
    out,
    pick_lang,
    project_folder,
)
from vigil.domain import FaultClass, Level
from vigil.i18n import t
from vigil.runbook import LEVELS, RunbookError, load_runbook

plan_app = typer.Typer(no_args_is_help=True, help="The emergency plan as Vigil runs it.")


_STATE = {"covered": ("已实现并经测试", "covered"), "untested": ("已实现，无测试", "untested"),
          "people": ("人工处理，已跟踪", "people's work, tracked"),
          "missing": ("[red]未实现[/]", "[red]missing[/]")}
_KIND = {"auto": ("自动执行", "automatic"), "approval": ("需审批", "needs approval"),
         "manual": ("人工处理", "by people"), "notify": ("通知各方", "notify parties")}


def _section(name: str, lang: str) -> str:
    """A runbook section: one of the plan's levels, or after recovery."""
    if name == "recovery":
        return "after recovery" if lang == "en" else "恢复后"
    return Level(name).text(lang)


@plan_app.command("show")
def plan_show(fault_class: Annotated[FaultClass | None, typer.Option(
                  "--class", help="One fault class.")] = None,
              level: Annotated[str | None, typer.Option(
                  help="IV, III, II, I or recovery.")] = None,
              inventory: Annotated[Path | None, typer.Option(
                  "--inventory", "-i", help="The plan as this site runs it (its "
                  "vigil_runbook changes); default: the plan as shipped.")] = None,
              json_out: JsonOpt = False, lang: LangOpt = None,
              vault_password_file: VaultOpt = None) -> None:
    """What the plan says to do, for each fault class and level, with clause IDs."""
    lg = pick_lang(lang)
    if level is not None and level not in LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LEVELS)}", param_hint="--level")
    if inventory:
        runbook = load_inv(inventory, vault_password_file, lg).site_runbook
    else:
        try:
            runbook = load_runbook()
        except RunbookError as exc:
            fail(str(exc))
    classes = [fault_class] if fault_class else list(FaultClass)
    levels = [level] if level else list(LEVELS)
    rows = [{"fault_class": c.value, "level": lv, "clause": s.clause, "kind": s.kind,
             "text": s.text(lg)}
            for c in classes for lv in levels for s in runbook.steps(c, lv)]
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    i = 0 if lg == "zh" else 1
    table = Table(title="应急预案处置步骤" if lg == "zh" else "The plan's steps",
                  title_justify="left", show_lines=False)
    for col in (("故障类别", "Fault class"), ("级别", "Level"), ("条款", "Clause"),
                ("方式", "How"), ("要求", "What")):
        table.add_column(col[i], overflow="fold")
    for r in rows:
        klass = FaultClass(r["fault_class"])
        table.add_row(f"{t(f'class.{klass.value}', lg)} ({klass.clause})", _section(r["level"], lg),
                      r["clause"], _KIND[r["kind"]][i], escape(r["text"]))
    out.print(table)


@plan_app.command("coverage")
def plan_coverage(inventory: InventoryOpt = None, json_out: JsonOpt = False,
                  lang: LangOpt = None,
                  strict: Annotated[bool, typer.Option(
                      help="Exit 1 when a clause has nothing implementing it.")] = False,
                  project: ProjectOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Every clause of the plan with the runbook steps, checks, code and tests behind it:
    covered (something acts on it and a test exercises it), untested, people's work
    (tracked as tasks), or missing (flagged; --strict exits 1)."""
    from vigil.remediations.coverage import coverage

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    rows = coverage(inv.site_runbook, inv, project_folder(project, inv, required=False))
    missing = [r.clause for r in rows if not r.implemented]
    if json_out:
        sys.stdout.write(json.dumps([r.as_dict() for r in rows], ensure_ascii=False,
                                    indent=2) + "\n")
    else:
        zh = lg == "zh"
        table = Table(title="预案条款覆盖" if zh else "Plan coverage", title_justify="left",
                      show_lines=True)
        for col in (("条款", "Clause"), ("内容", "What"), ("状态", "State"),
                    ("预案步骤", "Runbook steps"), ("检查", "Checks"), ("代码", "Code"),
                    ("测试", "Tests")):
            table.add_column(col[0] if zh else col[1], overflow="fold")
        for r in rows:
            mark = r.clause if r.implemented else f"[red]✗ {r.clause}[/]"
            table.add_row(mark, escape(r.zh if zh else r.en), _STATE[r.state][0 if zh else 1],
                          "\n".join(r.steps),
                          f"{len(r.checks)}" if r.checks else "", "\n".join(r.code),
                          "\n".join(r.tests))
        out.print(table)
        count = {s: sum(r.state == s for r in rows) for s in _STATE}
        out.print("；".join(f"{_STATE[s][0]} {n}" for s, n in count.items()) if zh else
                  "; ".join(f"{_STATE[s][1]} {n}" for s, n in count.items()))
        out.print(("未实现：" if zh else "nothing implements: ") + (", ".join(missing) or "-"))
    if strict and missing:
        raise typer.Exit(1)



@plan_app.command("rehearse")
def plan_rehearse(step_ref: Annotated[str, typer.Argument(
                      metavar="CLASS.LEVEL.STEP",
                      help="e.g. voucher_library.IV.restart-service (see `vigil plan show`).")],
                  inventory: InventoryOpt = None, project: ProjectOpt = None,
                  store: StoreOpt = None, json_out: JsonOpt = False, lang: LangOpt = None,
                  vault_password_file: VaultOpt = None) -> None:
    """Rehearse one step of the site's plan: its playbook runs through ansible-runner in
    check mode (--check --diff), changing nothing. Exit 0 when it would succeed, 2 when
    not; recorded as a `step.rehearsed` event."""
    from vigil.remediations.playbook_run import run_playbook

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    klass, _, rest = step_ref.partition(".")
    level, _, step_id = rest.partition(".")
    try:
        step = inv.site_runbook.step(FaultClass(klass), level, step_id)
    except ValueError:
        step = None
    if step is None:
        fail(f"no step {step_ref!r} in the site's plan (see `vigil plan show -i`)")
    if step.run is None:
        fail(f"{step_ref} is a {step.kind} step: it runs no playbook")
    folder = project_folder(project, inv)
    assert folder is not None
    db = open_store(store, lg)
    tasks: list[dict[str, Any]] = []

    def on_task(item: dict[str, Any]) -> None:
        tasks.append(item)
        if not json_out:
            err.print(f"[dim]{escape(item['host'])}: {escape(item['task'])}: "
                      f"{item['status']}[/]")

    ident = f"rehearse_{step_ref}_{clock.now():%Y%m%dT%H%M%S%f}"
    outcome = run_playbook(step.run, inv.path, ident, True, step.timeout_s, on_task,
                           project=folder)
    summary = {"step": step_ref, "clause": step.clause, "playbook": step.run.playbook,
               "project": str(folder), "status": outcome.status, "ok": outcome.ok,
               "tasks": len(tasks), "failed_tasks": outcome.failed_tasks}
    db.append("step.rehearsed", step_ref, {**summary, "check_mode": True})
    if json_out:
        sys.stdout.write(json.dumps({**summary, "task_results": tasks}, ensure_ascii=False,
                                    indent=2) + "\n")
    elif lg == "zh":
        out.print(f"演练 {step_ref}（{step.clause}，{step.run.playbook}，检查模式）："
                  f"{'可以成功' if outcome.ok else '不会成功'}，{len(tasks)} 个任务结果"
                  + "".join(f"\n  失败：{escape(f)}" for f in outcome.failed_tasks))
    else:
        out.print(f"rehearsed {step_ref} ({step.clause}, {step.run.playbook}, check mode): "
                  f"{'would succeed' if outcome.ok else 'would NOT succeed'}, {len(tasks)} "
                  f"task results" + "".join(f"\n  failed: {escape(f)}"
                                            for f in outcome.failed_tasks))
    raise typer.Exit(0 if outcome.ok else 2)
