"""`vigil lab`: the local lab of real components, and faults injected into it."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vigil.cli.common import (
    JsonOpt,
    err,
    fail,
    out,
)

lab_app = typer.Typer(no_args_is_help=True,
                      help="The local lab of real components (needs root; see lab/).")


ComponentsArg = Annotated[list[str] | None, typer.Argument(
    help="Components (pg, rabbitmq, nut, pki, net); default all.")]


def _lab_call(action: str, names: list[str] | None) -> None:
    from vigil import lab

    try:
        getattr(lab, action)(names, progress=lambda m: err.print(f"[dim]{m}…[/]"))
    except lab.LabError as exc:
        fail(f"lab {action}: {exc}")


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
        fail(str(exc))
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
        fail(str(exc))


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
        fail(str(exc))
    out.print(FAULTS[what])


@lab_app.command("vouchers")
def lab_vouchers(count: Annotated[int, typer.Option(help="Vouchers finance sent.")] = 1000,
                 day: Annotated[str, typer.Option(help="Business date.")] = "2026-11-27",
                 missing: int = 0, extra: int = 0, altered: int = 0, not_received: int = 0,
                 no_receipt: int = 0, seed: int = 1, json_out: JsonOpt = False) -> None:
    """Fill the lab's three voucher libraries, injecting discrepancies into pboc and bank-a."""

    from vigil.lab import vouchers

    try:
        expected = vouchers.generate(count, dt.date.fromisoformat(day), seed=seed,
                                     missing=missing, extra=extra, altered=altered,
                                     not_received=not_received, no_receipt=no_receipt)
    except Exception as exc:  # the lab's PostgreSQL may be down: say so, briefly
        fail(f"lab vouchers: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    report = {k: {p: sorted(v) for p, v in getattr(expected, k).items()}
              for k in ("resend_to", "resend_from", "differs", "missing")}
    if json_out:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        out.print(f"{count} vouchers for {day}; injected: {json.dumps(report)[:2000]}")

