"""`vigil plan show`: the runbook (the plan as data) rendered for people."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from remediations.runbook import LEVELS, RunbookError, load_runbook
from vigil.cli import JsonOpt, LangOpt, _fail, _lang, app, out
from vigil.domain import FaultClass
from vigil.i18n import t

plan_app = typer.Typer(no_args_is_help=True, help="The emergency plan as Vigil runs it.")
app.add_typer(plan_app, name="plan")

_KIND = {"auto": ("自动执行", "automatic"), "approval": ("需审批", "needs approval"),
         "manual": ("人工处理", "by people"), "notify": ("通知各方", "notify parties")}
_LEVEL = {"IV": ("四级", "level IV"), "III": ("三级", "level III"), "II": ("二级", "level II"),
          "I": ("一级", "level I"), "recovery": ("恢复后", "after recovery")}


@plan_app.command("show")
def plan_show(fault_class: Annotated[FaultClass | None, typer.Option(
                  "--class", help="One fault class.")] = None,
              level: Annotated[str | None, typer.Option(
                  help="IV, III, II, I or recovery.")] = None,
              json_out: JsonOpt = False, lang: LangOpt = None) -> None:
    """What the plan says to do, for each fault class and level, with clause IDs."""
    lg = _lang(lang)
    if level is not None and level not in LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LEVELS)}", param_hint="--level")
    try:
        runbook = load_runbook()
    except RunbookError as exc:
        _fail(str(exc))
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
        table.add_row(f"{t(f'class.{klass.value}', lg)} ({klass.clause})", _LEVEL[r["level"]][i],
                      r["clause"], _KIND[r["kind"]][i], escape(r["text"]))
    out.print(table)
