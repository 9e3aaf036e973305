"""Serving the console with uvicorn: TLS from the inventory's certificate, or plain HTTP
behind a reverse proxy whose forwarded headers are believed only from
`vigil_console.trusted_proxies`."""

from __future__ import annotations

import threading

import uvicorn

from vigil.console.app import build
from vigil.model import Inventory
from vigil.store import Store


def listen_on(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def config(inv: Inventory, store: Store, listen: str | None = None) -> uvicorn.Config:
    host, port = listen_on(listen or inv.console.listen)
    console = inv.console
    return uvicorn.Config(
        build(inv, store), host=host, port=port, log_level="warning", access_log=False,
        ssl_certfile=console.tls_cert, ssl_keyfile=console.tls_key,
        proxy_headers=bool(console.trusted_proxies),
        forwarded_allow_ips=",".join(console.trusted_proxies) or None,
        server_header=False, date_header=True,
        timeout_graceful_shutdown=5)  # a half-open connection never holds up a stop


def serve(inv: Inventory, store: Store, listen: str | None = None) -> None:
    uvicorn.Server(config(inv, store, listen)).run()


def serve_in_thread(inv: Inventory, store: Store, listen: str | None = None) -> uvicorn.Server:
    """The console beside the daemon (`vigil watch --serve`): it stops with the process
    (uvicorn leaves the signals to the main thread, the daemon's)."""
    server = uvicorn.Server(config(inv, store, listen))
    threading.Thread(target=server.run, name="console", daemon=True).start()
    return server
