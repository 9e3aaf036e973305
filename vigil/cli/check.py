"""`vigil check`: every check once, a table or JSON, the worst status as exit code."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from vigil.checks.cycle import run_checks
from vigil.cli.common import (
    EXIT_ERROR,
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    err,
    fail,
    load_inv,
    open_store,
    out,
    pick_lang,
)
from vigil.i18n import Lang, t
from vigil.model import Inventory
from vigil.result import Result, Status, worst
from vigil.status_log import log_results

_STYLE = {Status.OK: "green", Status.WARNING: "yellow", Status.CRITICAL: "bold red",
          Status.UNKNOWN: "magenta"}


def check(inventory: InventoryOpt = None, json_out: JsonOpt = False,
          limit: Annotated[str | None, typer.Option(
              "--limit", "-l", help="Only hosts, groups, systems or checks matching these "
              "comma-separated glob patterns.")] = None,
          store: StoreOpt = None,
          record: Annotated[bool, typer.Option(help="Record status changes in the event log.")]
          = True,
          lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Run every check once; print a table (or JSON) and exit with the worst status."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    checks = inv.limit(limit)
    if not checks:
        fail(t("check.none", lg, limit=limit))
    results = _run_with_progress(checks, lg, quiet=json_out)
    recorded = None
    if record:
        db = open_store(store, lg)
        try:
            recorded = len(log_results(db, results))
        except Exception as exc:  # a store that cannot record must not hide the results
            err.print(f"[bold red]vigil:[/] {t('store.error', lg)}: {escape(str(exc))}")
            recorded = -1
    if json_out:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in results],
                                    ensure_ascii=False, indent=2) + "\n")
    else:
        _print_results(inv, results, lg)
        if recorded and recorded > 0:
            err.print(t("check.recorded", lg, n=recorded, store=db.safe_url), style="dim")
    code = worst([r.status for r in results]).exit_code
    raise typer.Exit(EXIT_ERROR if recorded == -1 else code)


def _run_with_progress(checks: list, lang: Lang, quiet: bool) -> list[Result]:
    if quiet or not err.is_terminal:
        return run_checks(checks)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(t("check.progress", lang), total=len(checks))
        return run_checks(checks, on_result=lambda _r: progress.advance(task))


def _print_results(inv: Inventory, results: list[Result], lang: Lang) -> None:
    counts = Counter(r.status for r in results)
    table = Table(title=t("check.title", lang, site=inv.site.name.get(lang), n=len(results)),
                  title_justify="left", show_lines=False)
    for col in ("status", "system", "class", "check", "target", "message", "duration"):
        table.add_column(t(f"col.{col}", lang), overflow="fold",
                         justify="right" if col == "duration" else "left")
    for r in sorted(results, key=lambda r: (-r.status.severity, r.system, r.check)):
        system = inv.systems[r.system].name.get(lang) if r.system in inv.systems else r.system
        table.add_row(f"[{_STYLE[r.status]}]{t(f'status.{r.status.value}', lang)}[/]",
                      escape(system), t(f"class.{r.fault_class.value}", lang), escape(r.check),
                      escape(r.target), escape(r.text(lang)), f"{r.duration_s:.2f}s")
    out.print(table)
    out.print(t("check.summary", lang, **{s.value: counts.get(s, 0) for s in Status}))

