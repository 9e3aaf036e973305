"""Logging in to a Zabbix API through pyzabbix, with one clear line for what went wrong.

pyzabbix follows the API's versions: `user.login` takes `user` before 5.4 and `username`
from it, and from 6.4 the session or API token goes in an `Authorization: Bearer` header
instead of the request's `auth` field (tests/unit/test_zabbix_api.py replays 6.0, 6.4 and
7.0 answers). What differs in the objects themselves is here too (`template_groups`)."""

from __future__ import annotations

import threading
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
    """A logged-in pyzabbix.ZabbixAPI: with the site's API token, or its user and password."""
    api = ZabbixAPI(server_of(z.url), timeout=timeout_s)
    api.session.verify = z.verify_tls
    try:
        if z.token is not None:
            api.login(api_token=z.token.reveal())
            api.do_request("host.get", {"limit": 1, "output": ["hostid"]})  # token valid?
        else:
            assert z.user is not None and z.password is not None  # ZabbixVars checks
            api.login(z.user, z.password.reveal())
    except ZabbixAPIException as exc:
        raise ZabbixError(f"Zabbix at {z.url} refused the login of {z.who}: "
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


def template_groups(api: Any) -> bool:
    """From 6.2 a template belongs to template groups, not host groups."""
    return tuple(int(p) for p in str(api.version).split(".")[:2]) >= (6, 2)


_SESSIONS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()
# -32602 "Session terminated, re-login, please." / -32500 "Not authorised." (6.0): the
# session expired or was ended at the frontend.
_RELOGIN = ("re-login", "Not authorised", "Not authorized")


def shared_api(z: ZabbixVars) -> Any:
    """One session per server and account, kept between cycles (a login a check a minute
    would fill Zabbix's session table)."""
    with _LOCK:
        api = _SESSIONS.get((z.url, z.who))
        if api is None:
            api = _SESSIONS[(z.url, z.who)] = connect(z)
        return api


def shared_call(z: ZabbixVars, method: str, *ids: str, **params: Any) -> Any:
    """`call` on the shared session, logged in again once when it lapsed."""
    for attempt in (1, 2):
        try:
            return call(shared_api(z), method, *ids, **params)
        except ZabbixError as exc:
            if attempt == 2 or not any(m in str(exc) for m in _RELOGIN):
                raise
            with _LOCK:
                _SESSIONS.pop((z.url, z.who), None)
    raise AssertionError("unreachable")
