"""What Vigil sends to the Zabbix API of 6.0, 6.4 and 7.0, against a small HTTP server that
answers as each version does (answers as the Zabbix manual records them; the lab's real 6.0:
tests/lab/test_zabbix.py). 5.4 renamed user.login's `user` to `username` (a stand-in of 5.4
on refuses `user`, as 6.4 does); 6.4 moved the
session or API token from the request's `auth` field to an `Authorization: Bearer` header;
6.2 put templates in template groups."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import ROOT
from vigil.inventory import load_inventory
from vigil.model import ZabbixVars
from vigil.zabbix import api as zapi
from vigil.zabbix.sync import sync

SESSION = "0424bd59b807674191e7d77572075f33"  # user.login's answer in the manual
TOKEN = "a8b5f1e4c3d2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6"
NOT_AUTHORIZED = {"code": -32602, "message": "Invalid params.", "data": "Not authorized."}
SESSION_ENDED = {"code": -32602, "message": "Invalid params.",
                 "data": "Session terminated, re-login, please."}


class ZabbixLike:
    """Answers JSON-RPC as Zabbix `version` would: `.get` an empty list, `.create` new ids,
    user.login a session; `errors` answers a method's next call with an error once."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.requests: list[dict[str, Any]] = []  # method, params, auth field, header
        self.errors: dict[str, dict[str, Any]] = {}
        self.valid = {SESSION, TOKEN}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                header = self.headers.get("Authorization")
                outer.requests.append({"method": body["method"], "params": body["params"],
                                       "auth": body.get("auth"), "header": header})
                answer = outer.answer(body, header)
                data = json.dumps({"jsonrpc": "2.0", "id": body["id"], **answer}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: dict[str, Any], header: str | None) -> dict[str, Any]:
        method, params = body["method"], body["params"]
        if method == "apiinfo.version":
            return {"result": self.version}
        if method == "user.login":
            wanted = "username" if self.version >= "5.4" else "user"
            if wanted not in params:
                return {"error": {"code": -32602, "message": "Invalid params.",
                                  "data": f'Invalid parameter "/": unexpected parameter '
                                          f'"{next(iter(params))}".'}}
            return {"result": SESSION}
        if method in self.errors:
            return {"error": self.errors.pop(method)}
        token = header.removeprefix("Bearer ") if header else body.get("auth")
        if token not in self.valid:
            return {"error": NOT_AUTHORIZED}
        if method.endswith(".get"):
            return {"result": []}
        if method.endswith(".create"):
            kind = method.split(".")[0]
            ids = "groupids" if kind.endswith("group") else "itemids" if kind in (
                "discoveryrule", "itemprototype") else f"{kind}ids"
            return {"result": {ids: [str(len(self.requests))]}}
        return {"result": {}}

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method]


@pytest.fixture
def zabbix(request: pytest.FixtureRequest) -> Iterator[ZabbixLike]:
    z = ZabbixLike(request.param)
    yield z
    z.server.shutdown()


def site(url: str, **login: str) -> ZabbixVars:
    return ZabbixVars.model_validate({"url": f"{url}/api_jsonrpc.php",
                                      **(login or {"user": "vigil", "password": "pw"})})


@pytest.mark.parametrize("zabbix", ["6.0.36"], indirect=True)
def test_6_0_sends_the_session_in_the_request_s_auth_field(zabbix: ZabbixLike) -> None:
    api = zapi.connect(site(zabbix.url))
    zapi.call(api, "host.get", output=["hostid"])
    (login,) = zabbix.calls("user.login")
    assert login["params"] == {"username": "vigil", "password": "pw"}  # 5.4 on
    (get,) = zabbix.calls("host.get")
    assert get["auth"] == SESSION and get["header"] is None


@pytest.mark.parametrize("zabbix", ["6.4.0", "7.0.0"], indirect=True)
def test_6_4_and_7_0_get_the_session_in_a_bearer_header(
        zabbix: ZabbixLike) -> None:
    api = zapi.connect(site(zabbix.url))
    zapi.call(api, "host.get", output=["hostid"])
    (get,) = zabbix.calls("host.get")
    assert get["header"] == f"Bearer {SESSION}" and get["auth"] is None


@pytest.mark.parametrize("zabbix", ["7.0.0"], indirect=True)
def test_an_api_token_goes_in_a_header_and_no_login_is_made(zabbix: ZabbixLike) -> None:
    api = zapi.connect(site(zabbix.url, token=TOKEN))
    zapi.call(api, "problem.get", recent=False)
    assert not zabbix.calls("user.login")
    assert {r["header"] for r in zabbix.requests if r["method"] != "apiinfo.version"} == {
        f"Bearer {TOKEN}"}


@pytest.mark.parametrize("zabbix", ["7.0.0"], indirect=True)
def test_a_refused_token_is_one_line_naming_the_server_and_never_the_token(
        zabbix: ZabbixLike) -> None:
    zabbix.valid = set()  # the token was revoked
    with pytest.raises(zapi.ZabbixError) as caught:
        zapi.connect(site(zabbix.url, token=TOKEN))
    said = str(caught.value)
    assert "\n" not in said and zabbix.url in said and "Not authorized" in said
    assert TOKEN not in said and "an API token" in said


@pytest.mark.parametrize("zabbix", ["6.0.36"], indirect=True)
def test_a_terminated_session_is_logged_in_again_once(zabbix: ZabbixLike) -> None:
    z = site(zabbix.url)
    zapi.shared_call(z, "host.get", output=["hostid"])
    zabbix.errors["host.get"] = SESSION_ENDED  # the session expired at the server
    assert zapi.shared_call(z, "host.get", output=["hostid"]) == []
    assert len(zabbix.calls("user.login")) == 2
    zabbix.errors["host.get"] = {"code": -32500, "message": "Application error.",
                                 "data": "No permissions to referred object."}
    with pytest.raises(zapi.ZabbixError, match=r"host\.get failed.*No permissions"):
        zapi.shared_call(z, "host.get", output=["hostid"])
    assert len(zabbix.calls("user.login")) == 2  # not a session matter: no new login


@pytest.mark.parametrize("zabbix", ["6.0.36", "6.4.0", "7.0.0"], indirect=True)
def test_sync_puts_the_template_in_a_template_group_from_6_2(zabbix: ZabbixLike) -> None:
    inv = load_inventory(ROOT / "inventory/lab")
    z = site(zabbix.url)
    sync(zapi.connect(z), inv, z, dry_run=False)
    (template,) = zabbix.calls("template.create")
    if zabbix.version >= "6.2":
        (group,) = zabbix.calls("templategroup.create")
        assert group["params"] == {"name": "Vigil/lab"}
        made = zabbix.requests.index(group) + 1  # the id the stand-in gave it
    else:
        assert not zabbix.calls("templategroup.create")
        made = zabbix.requests.index(zabbix.calls("hostgroup.create")[0]) + 1
    assert template["params"]["groups"] == [{"groupid": str(made)}]
