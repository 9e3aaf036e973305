"""`vigil serve`: the duty console for browsers and phones."""

from __future__ import annotations

from typing import Annotated

import typer

from vigil.cli.common import (
    InventoryOpt,
    StoreOpt,
    VaultOpt,
    err,
    fail,
    load_inv,
    open_store,
    pick_lang,
)

ListenOpt = Annotated[str | None, typer.Option(
    "--listen", help="HOST:PORT (default: vigil_console.listen, 127.0.0.1:8080).")]


def serve(inventory: InventoryOpt = None, store: StoreOpt = None, listen: ListenOpt = None,
          vault_password_file: VaultOpt = None) -> None:
    """Serve the duty console: people sign in (vigil users add) and see, acknowledge,
    approve, deny and tick off the plan's steps as themselves. Stops on SIGTERM/Ctrl-C."""
    from vigil.console.server import config, listen_on

    lg = pick_lang(None)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    try:
        listen_on(listen or inv.console.listen)
    except ValueError as exc:
        fail(str(exc))
    import uvicorn

    cfg = config(inv, db, listen)
    scheme = "https" if inv.console.tls_cert else "http"
    err.print(f"vigil serve: {scheme}://{cfg.host}:{cfg.port}/")
    uvicorn.Server(cfg).run()
