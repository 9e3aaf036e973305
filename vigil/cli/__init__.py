"""The `vigil` command line: each command group in a module named after it, registered
here explicitly; shared options and helpers in `vigil.cli.common`.

Exit codes follow the Nagios plugin convention so `vigil check` can serve as an external
check: 0 ok, 1 warning, 2 critical, 3 unknown, and 3 for an inventory, store or usage
error; 4 when a person or a bundle is refused.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from vigil import __version__
from vigil.cli import (
    check,
    drill,
    events,
    exchange,
    incidents,
    inventory,
    lab,
    ladder,
    monitors,
    plan,
    reconcile,
    report,
    routine,
    serve,
    silence,
    steps,
    users,
    watch,
    zabbix,
)
from vigil.cli.common import EXIT_ERROR, err, out
from vigil.errors import UserError, first_line, one_line


def _version(value: bool) -> None:
    if value:
        out.print(__version__)
        raise typer.Exit(0)


def version() -> None:
    """Print Vigil's version."""
    out.print(__version__)


def build() -> typer.Typer:
    app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Vigil: the county treasury emergency plan, made executable.")

    @app.callback()
    def _root(version: Annotated[bool, typer.Option(
                  "--version", callback=_version, is_eager=True,
                  help="Print Vigil's version and exit.")] = False,
              debug: Annotated[bool, typer.Option(
                  "--debug", help="On an internal error, show the whole traceback "
                  "(also $VIGIL_DEBUG=1).")] = False) -> None:
        """Vigil: the county treasury emergency plan, made executable."""

    app.command("check")(check.check)
    app.command("watch")(watch.watch)
    app.command("status")(incidents.status)
    app.command("monitors")(monitors.monitors)
    app.command("ack")(incidents.ack)
    app.command("steps")(steps.steps_list)
    app.command("approve")(steps.approve)
    app.command("deny")(steps.deny)
    app.command("reconcile")(reconcile.reconcile_cmd)
    app.command("serve")(serve.serve)
    app.command("version")(version)
    for group, name in ((inventory.inventory_app, "inventory"), (events.events_app, "events"),
                        (incidents.incidents_app, "incidents"), (report.report_app, "report"),
                        (ladder.ladder_app, "ladder"),
                        (plan.plan_app, "plan"), (steps.task_app, "task"),
                        (reconcile.supplementary_app, "supplementary"),
                        (exchange.exchange_app, "exchange"), (lab.lab_app, "lab"),
                        (zabbix.zabbix_app, "zabbix"), (silence.silence_app, "silence"),
                        (drill.drill_app, "drill"), (routine.routine_app, "routine"),
                        (users.users_app, "users")):
        app.add_typer(group, name=name)
    return app


def main() -> None:
    """Entry point: usage errors exit 3 (not click's 2, which means critical here), and
    anything unexpected is one line with exit 3 — the traceback only with --debug."""
    command = typer.main.get_command(build())
    try:
        code = command.main(prog_name="vigil", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except UserError as exc:  # bad input or setting: its message is the line to read
        err.print(f"[bold red]vigil:[/] {escape(one_line(str(exc)) or type(exc).__name__)}",
                  soft_wrap=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        # typer may vendor click, so match the usage-error family by name.
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was the answer
            sys.exit(0)
        if any(k.__name__ == "UsageError" for k in type(exc).__mro__):
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "vigil"
            message = one_line(" ".join(exc.format_message().split()))  # type: ignore[attr-defined]
            err.print(f"[bold red]vigil:[/] {escape(message)} (see {where} --help)",
                      soft_wrap=True)
            sys.exit(EXIT_ERROR)
        if "--debug" in sys.argv[1:] or os.environ.get("VIGIL_DEBUG") == "1":
            raise
        what = one_line(first_line(str(exc), ""))[:300]
        err.print(f"[bold red]vigil:[/] internal error: {type(exc).__name__}"
                  f"{': ' + escape(what) if what else ''} (see --debug)", soft_wrap=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
