"""`vigil events list | verify`: the append-only event log."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vigil.alerting.incidents import load_incidents
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    err,
    load_inv,
    open_store,
    out,
    pick_lang,
)
from vigil.clock import local_text
from vigil.i18n import t
from vigil.remediations.steps import load_steps
from vigil.store import StoreError, Verdict

events_app = typer.Typer(no_args_is_help=True, help="The append-only event log.")


@events_app.command("list")
def events_list(store: StoreOpt = None, kind: Annotated[str | None, typer.Option()] = None,
                subject: Annotated[str | None, typer.Option()] = None,
                after: Annotated[int, typer.Option(help="Only events after this seq.")] = 0,
                limit: Annotated[int | None, typer.Option()] = None,
                json_out: JsonOpt = False, lang: LangOpt = None,
                inventory: InventoryOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Show events in order (the log keeps UTC; the table shows the site's local time)."""
    lg = pick_lang(lang)
    evs = open_store(store, lg).events(kind=kind, subject=subject, after=after, limit=limit)
    if json_out:
        sys.stdout.write(json.dumps([e.__dict__ for e in evs], ensure_ascii=False, indent=2)
                         + "\n")
        return
    if not evs:
        out.print(t("events.none", lg))
        return
    tz = load_inv(inventory, vault_password_file, lg).site.timezone
    table = Table()
    for col in ("seq", "at", "kind", "subject", "data"):
        table.add_column(t(f"col.{col}", lg), overflow="fold")
    for e in evs:
        summary = e.data.get("message") or json.dumps(e.data, ensure_ascii=False)[:120]
        if "status" in e.data:
            summary = f"{e.data.get('previous') or '-'} → {e.data['status']}: {summary}"
        table.add_row(str(e.seq), local_text(e.at, tz, seconds=True), e.kind,
                      escape(e.subject), escape(summary))
    out.print(table)


@events_app.command("verify")
def events_verify(store: StoreOpt = None, json_out: JsonOpt = False,
                  lang: LangOpt = None) -> None:
    """Re-compute the hash chain; exit 2 naming the first bad event if anything was changed
    or cannot be read, or the first damaged incident or step record."""
    lg = pick_lang(lang)
    db = open_store(store, lg)
    verdict = db.verify()
    if verdict.ok:  # the typed records too: a command would refuse a damaged one
        try:
            load_incidents(db)
            load_steps(db)
        except StoreError as exc:
            verdict = Verdict(False, verdict.count, None, str(exc).split(";")[0])
    if json_out:
        sys.stdout.write(json.dumps(verdict.__dict__) + "\n")
    elif verdict.ok:
        out.print(f"[green]{t('verify.ok', lg, n=verdict.count)}[/]")
    else:
        err.print(f"[bold red]{escape(t('verify.bad', lg, reason=verdict.reason))}[/]")
    raise typer.Exit(0 if verdict.ok else 2)

