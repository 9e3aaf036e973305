"""Logging in to a Zabbix API through pyzabbix, with one clear line for what went wrong."""

from __future__ import annotations

from typing import Any

import requests
from pyzabbix import ZabbixAPI, ZabbixAPIException

from vigil.errors import UserError, first_line
from vigil.model import ZabbixVars


class ZabbixError(UserError):
    """Zabbix refused or could not be reached: the server named, and what failed."""


def server_of(url: str) -> str:
    """pyzabbix wants the frontend's address; a site may give the api_jsonrpc.php URL."""
    return url.removesuffix("/api_jsonrpc.php").rstrip("/")


def connect(z: ZabbixVars, timeout_s: float = 10) -> Any:
    """A logged-in pyzabbix.ZabbixAPI (6.0's `user`, 6.4's `username`: pyzabbix picks)."""
    api = ZabbixAPI(server_of(z.url), timeout=timeout_s)
    api.session.verify = z.verify_tls
    try:
        api.login(z.user, z.password.reveal())
    except ZabbixAPIException as exc:
        raise ZabbixError(f"Zabbix at {z.url} refused the login of {z.user!r}: "
                          f"{first_line(str(exc), 'error')}") from None
    except (requests.RequestException, ValueError) as exc:
        raise ZabbixError(f"Zabbix at {z.url} cannot be reached: "
                          f"{first_line(str(exc), type(exc).__name__)}") from None
    return api


def call(api: Any, method: str, *ids: str, **params: Any) -> Any:
    """One API call (`*ids` for the methods that take a list, like host.delete), its
    failure a ZabbixError naming the method."""
    try:
        return api.do_request(method, list(ids) if ids else params)["result"]
    except ZabbixAPIException as exc:
        raise ZabbixError(f"Zabbix API {method} failed: {first_line(str(exc), 'error')}") \
            from None
    except requests.RequestException as exc:
        raise ZabbixError(f"Zabbix API {method}: {first_line(str(exc), type(exc).__name__)}") \
            from None
