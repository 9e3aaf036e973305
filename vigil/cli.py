"""The `vigil` command line.

Exit codes follow the Nagios plugin convention so `vigil check` can serve as an external
check: 0 ok, 1 warning, 2 critical, 3 unknown, and 3 for an inventory, store or usage error.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from vigil import __version__
from vigil.checks.runner import run_checks
from vigil.i18n import Lang, default_lang, t
from vigil.inventory import InventoryError, load_inventory
from vigil.model import Inventory
from vigil.paths import PROJECT_ENV, ProjectDirError, demo_inventory, project_dir
from vigil.recording import record_results
from vigil.result import Result, Status, worst
from vigil.store import Store, StoreError

EXIT_ERROR = 3

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Vigil: the county treasury emergency plan, made executable.")
events_app = typer.Typer(no_args_is_help=True, help="The append-only event log.")
inventory_app = typer.Typer(no_args_is_help=True, help="Validate and show an inventory.")
app.add_typer(events_app, name="events")
app.add_typer(inventory_app, name="inventory")
lab_app = typer.Typer(no_args_is_help=True,
                      help="The local lab of real components (needs root; see lab/).")
app.add_typer(lab_app, name="lab")

# Piped output (a file, a pager, CI logs) gets wide tables instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)

_STYLE = {Status.OK: "green", Status.WARNING: "yellow", Status.CRITICAL: "bold red",
          Status.UNKNOWN: "magenta"}

InventoryOpt = Annotated[Path | None, typer.Option(
    "--inventory", "-i", help="Inventory directory or file (default: inventory/demo).")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Event store URL or SQLite path (default: $VIGIL_STORE, else "
    "~/.local/state/vigil/vigil.db).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
LangOpt = Annotated[str | None, typer.Option(
    "--lang", help="zh (default) or en; also $VIGIL_LANG.")]
ProjectOpt = Annotated[Path | None, typer.Option(
    "--project-dir", help="The Ansible project to run (playbooks/, roles/): default "
    "$VIGIL_PROJECT_DIR, else the inventory's vigil_project_dir, else this checkout.")]
VaultOpt = Annotated[Path | None, typer.Option(
    "--vault-password-file", help="ansible-vault password file (or $ANSIBLE_VAULT_PASSWORD_FILE).")]


def _lang(value: str | None) -> Lang:
    if value is None:
        return default_lang()
    if value not in ("zh", "en"):
        raise typer.BadParameter("must be zh or en", param_hint="--lang")
    return "en" if value == "en" else "zh"


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]vigil:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)


def _load(inventory: Path | None, vault: Path | None, lang: Lang) -> Inventory:
    try:
        return load_inventory(inventory or demo_inventory(),
                              vault_password_file=str(vault) if vault else None)
    except InventoryError as exc:
        _fail(f"{t('inventory.error', lang)}: {exc}")


def _project(option: Path | None, inv: Inventory, *, required: bool = True) -> Path | None:
    """The Ansible project to run (vigil.paths); None when not required and not set."""
    try:
        return project_dir(option, inv.project_dir, inv.path)
    except ProjectDirError as exc:
        if not required and not (option or os.environ.get(PROJECT_ENV) or inv.project_dir):
            return None
        _fail(str(exc))


def _open_store(url: str | None, lang: Lang) -> Store:
    try:
        return Store(url)
    except StoreError as exc:
        _fail(f"{t('store.error', lang)}: {exc}")


@app.command()
def check(inventory: InventoryOpt = None, json_out: JsonOpt = False,
          limit: Annotated[str | None, typer.Option(
              "--limit", "-l", help="Only hosts, groups, systems or checks matching these "
              "comma-separated glob patterns.")] = None,
          store: StoreOpt = None,
          record: Annotated[bool, typer.Option(help="Record status changes in the event log.")]
          = True,
          lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Run every check once; print a table (or JSON) and exit with the worst status."""
    lg = _lang(lang)
    inv = _load(inventory, vault_password_file, lg)
    checks = inv.limit(limit)
    if not checks:
        _fail(t("check.none", lg, limit=limit))
    results = _run_with_progress(checks, lg, quiet=json_out)
    recorded = None
    if record:
        db = _open_store(store, lg)
        try:
            recorded = len(record_results(db, results))
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


@inventory_app.command("validate")
def inventory_validate(inventory: InventoryOpt = None, json_out: JsonOpt = False,
                       lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Load and validate an inventory; exit 3 with a message naming file, host and field."""
    lg = _lang(lang)
    inv = _load(inventory, vault_password_file, lg)
    if json_out:
        sys.stdout.write(inv.model_dump_json(indent=2) + "\n")
        return
    out.print(t("inventory.ok", lg, hosts=len(inv.hosts), systems=len(inv.systems),
                checks=len(inv.checks), contacts=len(inv.contacts)))


@inventory_app.command("show")
def inventory_show(inventory: InventoryOpt = None, lang: LangOpt = None,
                   vault_password_file: VaultOpt = None) -> None:
    """The systems of an inventory, their fault classes, parties and dependencies."""
    lg = _lang(lang)
    inv = _load(inventory, vault_password_file, lg)
    table = Table(title=inv.site.name.get(lg), title_justify="left")
    for col in ("system", "class", "party", "host", "depends", "check"):
        table.add_column(t(f"col.{col}", lg), overflow="fold")
    for s in inv.systems.values():
        table.add_row(f"{escape(s.name.get(lg))} [dim]({s.id})[/]",
                      f"{t(f'class.{s.fault_class.value}', lg)} {s.fault_class.clause}",
                      escape(inv.parties[s.party].name.get(lg)), s.host,
                      ", ".join(s.depends_on), ", ".join(s.checks))
    out.print(table)


@events_app.command("list")
def events_list(store: StoreOpt = None, kind: Annotated[str | None, typer.Option()] = None,
                subject: Annotated[str | None, typer.Option()] = None,
                after: Annotated[int, typer.Option(help="Only events after this seq.")] = 0,
                limit: Annotated[int | None, typer.Option()] = None,
                json_out: JsonOpt = False, lang: LangOpt = None) -> None:
    """Show events in order."""
    lg = _lang(lang)
    evs = _open_store(store, lg).events(kind=kind, subject=subject, after=after, limit=limit)
    if json_out:
        sys.stdout.write(json.dumps([e.__dict__ for e in evs], ensure_ascii=False, indent=2)
                         + "\n")
        return
    if not evs:
        out.print(t("events.none", lg))
        return
    table = Table()
    for col in ("seq", "at", "kind", "subject", "data"):
        table.add_column(t(f"col.{col}", lg), overflow="fold")
    for e in evs:
        summary = e.data.get("message") or json.dumps(e.data, ensure_ascii=False)[:120]
        if "status" in e.data:
            summary = f"{e.data.get('previous') or '-'} → {e.data['status']}: {summary}"
        table.add_row(str(e.seq), e.at, e.kind, escape(e.subject), escape(summary))
    out.print(table)


@events_app.command("verify")
def events_verify(store: StoreOpt = None, json_out: JsonOpt = False,
                  lang: LangOpt = None) -> None:
    """Re-compute the hash chain; exit 2 naming the first bad event if anything was changed."""
    lg = _lang(lang)
    verdict = _open_store(store, lg).verify()
    if json_out:
        sys.stdout.write(json.dumps(verdict.__dict__) + "\n")
    elif verdict.ok:
        out.print(f"[green]{t('verify.ok', lg, n=verdict.count)}[/]")
    else:
        err.print(f"[bold red]{escape(t('verify.bad', lg, reason=verdict.reason))}[/]")
    raise typer.Exit(0 if verdict.ok else 2)


ComponentsArg = Annotated[list[str] | None, typer.Argument(
    help="Components (pg, rabbitmq, nut, pki, net); default all.")]


def _lab_call(action: str, names: list[str] | None) -> None:
    from vigil import lab

    try:
        getattr(lab, action)(names, progress=lambda m: err.print(f"[dim]{m}…[/]"))
    except lab.LabError as exc:
        _fail(f"lab {action}: {exc}")


@lab_app.command("up")
def lab_up(components: ComponentsArg = None) -> None:
    """Start the lab (idempotent); waits until each component answers."""
    _lab_call("up", components)
    lab_status(components, json_out=False)


@lab_app.command("down")
def lab_down(components: ComponentsArg = None) -> None:
    """Stop what `lab up` started, by the PIDs it recorded."""
    _lab_call("down", components)


@lab_app.command("status")
def lab_status(components: ComponentsArg = None, json_out: JsonOpt = False) -> None:
    """Is each lab component up? Exit 0 when all are, 2 otherwise."""
    from vigil import lab

    try:
        health = lab.status(components)
    except lab.LabError as exc:
        _fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps([h.__dict__ for h in health]) + "\n")
    else:
        table = Table(title="vigil lab", title_justify="left")
        for col in ("component", "state", "detail"):
            table.add_column(col)
        for h in health:
            table.add_row(h.name, "[green]up[/]" if h.ok else "[red]down[/]", escape(h.detail))
        out.print(table)
    raise typer.Exit(0 if all(h.ok for h in health) else 2)


@lab_app.command("line")
def lab_line(line: Annotated[str, typer.Argument(help="primary or backup")],
             state: Annotated[str, typer.Argument(help="cut or restore")]) -> None:
    """Cut or restore one of the site router's lines (fault injection)."""
    from vigil import lab

    if state not in ("cut", "restore"):
        raise typer.BadParameter("must be cut or restore", param_hint="STATE")
    try:
        lab.component("net").set_line(line, up=state == "restore")  # type: ignore[attr-defined]
    except lab.LabError as exc:
        _fail(str(exc))


FAULTS = {
    "pg-primary": "kill -9 the PostgreSQL primary (P4.3.2)",
    "line-primary": "cut the site router's primary line (P4.3.1)",
    "voucher-service": "stop the voucher library stand-in on vgl-app1 (P4.3.5)",
    "ocsp": "stop the CA's OCSP responder (P4.3.6)",
    "consumers": "stop the parties' queue consumers: queues jam (P4.3.7)",
}


@lab_app.command("fault")
def lab_fault(what: Annotated[str, typer.Argument(
        help="; ".join(f"{k}: {v}" for k, v in FAULTS.items()))]) -> None:
    """Inject one real fault for a drill by hand; `vigil lab up` heals all but the database
    (after a failover: playbooks/db-failover.yml -e db_failover_rebuild=true)."""
    import os
    import signal

    from vigil import lab
    from vigil.lab.procs import read_pid

    if what not in FAULTS:
        raise typer.BadParameter(f"one of {', '.join(FAULTS)}", param_hint="WHAT")
    try:
        if what == "pg-primary":
            pid = read_pid(lab.lab_dir() / "pg" / "primary" / "postmaster.pid")
            if pid:
                os.kill(pid, signal.SIGKILL)
        elif what == "line-primary":
            lab.component("net").set_line("primary", up=False)  # type: ignore[attr-defined]
        elif what == "voucher-service":
            lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
        elif what == "ocsp":
            lab.component("pki").stop_service("ocsp")  # type: ignore[attr-defined]
        else:
            lab.component("consumers").down()
    except (lab.LabError, OSError) as exc:
        _fail(str(exc))
    out.print(FAULTS[what])


@lab_app.command("vouchers")
def lab_vouchers(count: Annotated[int, typer.Option(help="Vouchers finance sent.")] = 1000,
                 day: Annotated[str, typer.Option(help="Business date.")] = "2026-11-27",
                 missing: int = 0, extra: int = 0, altered: int = 0, not_received: int = 0,
                 no_receipt: int = 0, seed: int = 1, json_out: JsonOpt = False) -> None:
    """Fill the lab's three voucher libraries, injecting discrepancies into pboc and bank-a."""
    import datetime as dt

    from vigil.lab import vouchers

    try:
        expected = vouchers.generate(count, dt.date.fromisoformat(day), seed=seed,
                                     missing=missing, extra=extra, altered=altered,
                                     not_received=not_received, no_receipt=no_receipt)
    except Exception as exc:  # the lab's PostgreSQL may be down: say so, briefly
        _fail(f"lab vouchers: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    report = {k: {p: sorted(v) for p, v in getattr(expected, k).items()}
              for k in ("resend_to", "resend_from", "differs", "missing")}
    if json_out:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        out.print(f"{count} vouchers for {day}; injected: {json.dumps(report)[:2000]}")


@app.command()
def version() -> None:
    """Print Vigil's version."""
    out.print(__version__)


def _register() -> None:
    from vigil import (  # noqa: F401 (they register commands)
        cli_exchange,
        cli_plan,
        cli_reconcile,
        cli_steps,
        cli_watch,
    )


def main() -> None:
    """Entry point: usage errors exit 3 (not click's 2, which means critical here)."""
    _register()
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="vigil", standalone_mode=False)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # typer may vendor click, so match the usage-error family by name.
        if any(k.__name__ == "UsageError" for k in type(exc).__mro__):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(EXIT_ERROR)
        raise
    sys.exit(code if isinstance(code, int) else 0)

