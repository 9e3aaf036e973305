"""The `vigil` command line: each command group in a module named after it, registered
here explicitly; shared options and helpers in `vigil.cli.common`.

Exit codes follow the Nagios plugin convention so `vigil check` can serve as an external
check: 0 ok, 1 warning, 2 critical, 3 unknown, and 3 for an inventory, store or usage
error; 4 when a person or a bundle is refused.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.markup import escape

from vigil import __version__
from vigil.cli.common import EXIT_ERROR, err, out
from vigil.errors import UserError, first_line, one_line


def _version(value: bool) -> None:
    if value:
        out.print(__version__)
        raise typer.Exit(0)


def version() -> None:
    """Print Vigil's version."""
    out.print(__version__)


# Each command and group: its name, its module in vigil.cli ("" for this one) and the
# attribute there, in the order help lists them. A group is a typer.Typer; a command is a
# function.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("check", "check", "check"), ("watch", "watch", "watch"),
    ("status", "incidents", "status"), ("monitors", "monitors", "monitors"),
    ("ack", "incidents", "ack"), ("steps", "steps", "steps_list"),
    ("approve", "steps", "approve"), ("deny", "steps", "deny"),
    ("reconcile", "reconcile", "reconcile_cmd"), ("serve", "serve", "serve"),
    ("version", "", "version"), ("inventory", "inventory", "inventory_app"),
    ("events", "events", "events_app"),
    ("incidents", "incidents", "incidents_app"), ("report", "report", "report_app"),
    ("ladder", "ladder", "ladder_app"), ("plan", "plan", "plan_app"),
    ("task", "steps", "task_app"), ("supplementary", "reconcile", "supplementary_app"),
    ("exchange", "exchange", "exchange_app"), ("lab", "lab", "lab_app"),
    ("zabbix", "zabbix", "zabbix_app"), ("silence", "silence", "silence_app"),
    ("drill", "drill", "drill_app"), ("routine", "routine", "routine_app"),
    ("users", "users", "users_app"),
)


def _named(args: Sequence[str]) -> str | None:
    """The command the arguments name, if it is one of ours: the first that is no option
    (the root's options take no value)."""
    if "--version" in args:
        return "version"
    at = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if at is None or "--help" in args[:at]:  # the root's help lists every command
        return None
    return args[at] if args[at] in {name for name, _m, _a in COMMANDS} else None


def build(args: Sequence[str] | None = None) -> typer.Typer:
    """The app; given the arguments, with only the command they name, so that a command
    imports what it needs and not what every other needs (start-up time is paid by each
    run from a script or a monitoring agent)."""
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

    wanted = _named(args) if args is not None else None
    for name, module, attr in COMMANDS:
        if wanted not in (None, name):
            continue
        target = getattr(importlib.import_module(f"vigil.cli.{module}") if module else
                         sys.modules[__name__], attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def main() -> None:
    """Entry point: usage errors exit 3 (not click's 2, which means critical here), and
    anything unexpected is one line with exit 3 — the traceback only with --debug."""
    command = typer.main.get_command(build(sys.argv[1:]))
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
