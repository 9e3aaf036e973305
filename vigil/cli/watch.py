"""`vigil watch`: the daemon."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from vigil.cli.common import (
    InventoryOpt,
    ProjectOpt,
    StoreOpt,
    VaultOpt,
    fail,
    load_inv,
    open_store,
    pick_lang,
    project_folder,
)


def watch(inventory: InventoryOpt = None, store: StoreOpt = None,
          metrics_port: Annotated[int | None, typer.Option(
              help="Serve Prometheus metrics on PORT (see --metrics-address).")] = None,
          metrics_address: Annotated[str, typer.Option(
              help="The address the metrics listen on: 127.0.0.1 (default), 0.0.0.0 for all, "
                   "or one of this server's.")] = "127.0.0.1",
          limit: Annotated[str | None, typer.Option(
              "--limit", "-l", help="Only these hosts, groups, systems or checks (globs).")]
          = None,
          dry_run: Annotated[bool, typer.Option(
              "--dry-run", help="Run remediation playbooks in check mode only.")] = False,
          observe_only: Annotated[bool, typer.Option(
              "--observe-only", help="Run no remediation; record what would run.")] = False,
          serve: Annotated[str | None, typer.Option(
              "--serve", help="Serve the duty console in this process on HOST:PORT "
                              "(as vigil serve).")] = None,
          project: ProjectOpt = None, vault_password_file: VaultOpt = None) -> None:
    """The daemon: run checks on schedule, grade incidents, carry out the runbook, deliver
    messages. Stops on SIGTERM."""
    from vigil.daemon import Daemon, setup_logging
    from vigil.remediations.executor import Executor
    from vigil.store import StoreError

    # Until the daemon takes over the signals, a SIGTERM during start-up exits cleanly
    # (vigil.__main__ installed that before the first import).
    lg = pick_lang(None)
    inv = load_inv(inventory, vault_password_file, lg)
    if limit:
        inv = inv.model_copy(update={"checks": inv.limit(limit)})
    db = open_store(store, lg, connect=False)  # the daemon starts even while it is away
    # Built each time this daemon comes to lead (it resumes what the store holds).
    executor = partial(Executor, inv, db, dry_run=dry_run, observe_only=observe_only or None,
                       project=None if observe_only else project_folder(project, inv))
    setup_logging()
    if serve:
        from vigil.console.server import listen_on, serve_in_thread

        try:
            listen_on(serve)
            serve_in_thread(inv, open_store(store, lg), serve)
        except ValueError as exc:
            fail(str(exc))
    try:
        Daemon(inv, db, metrics_port=metrics_port, metrics_address=metrics_address,
               executor=executor).run()
    except StoreError as exc:  # e.g. a second daemon on one SQLite store
        fail(str(exc))

