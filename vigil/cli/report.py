"""`vigil report`: an incident's summary report for the leadership group (P5)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from vigil.cli.common import (
    InventoryOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    fail,
    load_inv,
    open_store,
    out,
    pick_lang,
)


def report(incident: Annotated[str, typer.Argument(help="Incident id.")],
           inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
           out_file: Annotated[str | None, typer.Option("--out", help="Write it here.")] = None,
           vault_password_file: VaultOpt = None) -> None:
    """The incident's summary report for the leadership group (P5), in Markdown."""

    from vigil.remediations.report import incident_report

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    try:
        text = incident_report(db, incident, ZoneInfo(inv.site.timezone), lg)
    except LookupError as exc:
        fail(str(exc))
    if not out_file:
        db.append("report.written", incident, {"lang": lg, "file": None})
        sys.stdout.write(text)
        return
    target = Path(out_file)
    part = target.with_name(f".{target.name}.part")
    try:  # the report and its event together, or neither
        part.write_text(text, encoding="utf-8")
        with db.transaction() as tx:
            tx.append("report.written", incident, {"lang": lg, "file": out_file})
            part.replace(target)
    except OSError as exc:
        fail(f"{out_file}: {exc.strerror}")
    finally:
        part.unlink(missing_ok=True)
    out.print(out_file)

