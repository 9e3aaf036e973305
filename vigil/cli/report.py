"""`vigil report show | edit | send`: an incident's summary report for the leadership
group (P5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from vigil import clock
from vigil.cli.common import (
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
from vigil.errors import one_line
from vigil.files import FileRefused, read_bounded
from vigil.identity import become

report_app = typer.Typer(no_args_is_help=True, help=(
    "An incident's summary report for the leadership group (P5): show it, write the "
    "analysis, send it."))

IncidentArg = Annotated[str, typer.Argument(help="Incident id.")]


@report_app.command("show")
def show(incident: IncidentArg, inventory: InventoryOpt = None, store: StoreOpt = None,
         lang: LangOpt = None,
         html: Annotated[bool, typer.Option("--html", help="A printable HTML page.")] = False,
         out_file: Annotated[str | None, typer.Option("--out", help="Write it here.")] = None,
         vault_password_file: VaultOpt = None) -> None:
    """The report, in Markdown (or printable HTML), on stdout or into a file."""
    from vigil.remediations.report import ReportRefused, as_html, incident_report

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    try:
        text = incident_report(db, inv, incident, lg)
    except ReportRefused as exc:
        fail(str(exc))
    if html:
        text = as_html(text, lg)
    fmt = "html" if html else "md"
    if not out_file:
        db.append("report.written", incident, {"lang": lg, "format": fmt, "file": None})
        sys.stdout.write(text)
        return
    target = Path(out_file)
    part = target.with_name(f".{target.name}.part")
    try:  # the report and its event together, or neither
        part.write_text(text, encoding="utf-8")
        with db.transaction() as tx:
            tx.append("report.written", incident, {"lang": lg, "format": fmt,
                                                   "file": out_file})
            part.replace(target)
    except OSError as exc:
        fail(f"{out_file}: {exc.strerror}")
    finally:
        part.unlink(missing_ok=True)
    out.print(out_file)


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(read_bounded(str(path), 1 << 20, "--file").decode("utf-8"))
    except FileRefused as exc:
        fail(str(exc))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        fail(f"{path}: not YAML text ({one_line(str(exc))})")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        fail(f"{path}: give a mapping of field: text (cause, effect, measures, lessons, "
             f"responsibilities)")
    return data


Field = Annotated[str | None, typer.Option(help="Text for this part of the analysis.")]


@report_app.command("edit")
def edit(incident: IncidentArg, as_: AsOpt = None, override: OverrideOpt = False,
         why: ReasonOpt = None, cause: Field = None, effect: Field = None,
         measures: Field = None, lessons: Field = None, responsibilities: Field = None,
         file: Annotated[Path | None, typer.Option(
             "--file", help="A YAML file of the fields (cause: …, lessons: …).")] = None,
         inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
         lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Write the analysis the report carries: cause, effect, measures, lessons and
    responsibilities (fields not given keep what was written before)."""
    from vigil.remediations.report import ReportRefused, save_analysis

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    fields = _from_file(file) if file else {}
    fields |= {k: v for k, v in (("cause", cause), ("effect", effect), ("measures", measures),
                                 ("lessons", lessons),
                                 ("responsibilities", responsibilities)) if v is not None}
    try:
        saved = save_analysis(db, inv, incident, fields, actor.contact, clock.now())
    except (ReportRefused, PermissionError) as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps(saved, ensure_ascii=False, indent=2) + "\n")
        return
    out.print(f"已保存 {incident} 的分析：{', '.join(sorted(fields))}" if lg == "zh" else
              f"saved the analysis of {incident}: {', '.join(sorted(fields))}")


@report_app.command("send")
def send(incident: IncidentArg, as_: AsOpt = None, override: OverrideOpt = False,
         why: ReasonOpt = None, inventory: InventoryOpt = None,
         store: StoreOpt = None, json_out: JsonOpt = False, lang: LangOpt = None,
         vault_password_file: VaultOpt = None) -> None:
    """Send the report to the leadership group through the outbox (each in their
    language); recorded with its digest."""
    from vigil.remediations.report import ReportRefused
    from vigil.remediations.report import send as send_report

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    try:
        to = send_report(db, inv, incident, actor.contact, clock.now())
    except (ReportRefused, PermissionError) as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({"incident": incident, "to": to}, ensure_ascii=False)
                         + "\n")
        return
    out.print(f"已交发件箱，发送给领导小组：{', '.join(to)}" if lg == "zh" else
              f"queued for the leadership group: {', '.join(to)}")
