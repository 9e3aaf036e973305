"""The duty console's rules, through its real HTTP handlers (Starlette's test client) on a
real store with the lab's inventory: who may see and do what, sign-in and lock-out, CSRF,
replayed and stale forms, signed links, escaping. The same flows in a real browser
against the running lab are in tests/lab/test_console_browser.py."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from pathlib import Path

import pyotp
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.testclient import TestClient

from tests.conftest import ROOT
from tests.unit.test_executor import Drill, _peripheral_at
from vigil import accounts, keys, links
from vigil.console import sessions
from vigil.console.app import build
from vigil.inventory import load_inventory
from vigil.model import Inventory
from vigil.store import Store

PASSWORD = "lab password 1"


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load_inventory(ROOT / "inventory/lab")


class Desk:
    """A console on a store with a level-I peripheral incident (approvals waiting for the
    leadership group, and for the team and the supervisor together) and accounts for the
    lab's people."""

    def __init__(self, inv: Inventory, tmp: Path) -> None:
        self.inv = inv
        self.store = Store(str(tmp / "s.db"))
        self.drill = Drill(inv, self.store)
        # Every level reached by one tick now: each approval is asked now, not expired.
        self.drill.now = dt.datetime.now(dt.UTC) - dt.timedelta(days=30, minutes=2)
        _peripheral_at(self.drill, 30)
        self.incident = next(iter(self.store.states(keys.INCIDENT))).removeprefix(
            keys.INCIDENT)
        self.step = next(k.removeprefix(keys.STEP) for k in self.store.states(keys.STEP)
                         if k.endswith("/stop-auto-processing"))
        self.secrets: dict[str, str | None] = {}
        self.app = build(inv, self.store)
        self.steps = 0

    def account(self, contact: str) -> None:
        self.secrets[contact] = accounts.set_password(
            self.store, self.inv, contact, PASSWORD, by="root", now=dt.datetime.now(dt.UTC),
            new=True)

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=True)

    def code(self, contact: str) -> str:
        secret = self.secrets[contact]
        if not secret:
            return ""
        # A code is good once: each sign-in of a test uses a later time step.
        self.steps += 1
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * (self.steps % 2))
        return pyotp.TOTP(secret).at(at) if self.steps % 2 else pyotp.TOTP(secret).now()

    def sign_in(self, client: TestClient, contact: str, password: str = PASSWORD,
                code: str | None = None) -> str:
        page = client.get("/login")
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token, page.text
        r = client.post("/login", data={"token": token[1], "next": "/", "contact": contact,
                                        "password": password,
                                        "code": self.code(contact) if code is None else code})
        return r.text if r.status_code == 200 else f"{r.status_code}: {r.text}"

    def kinds(self, subject: str) -> list[str]:
        return [e.kind for e in self.store.events() if e.subject == subject]


@pytest.fixture
def desk(inv: Inventory, tmp_path: Path) -> Desk:
    d = Desk(inv, tmp_path)
    for contact in ("lab-duty", "lab-leader", "lab-vendor", "lab-supervisor"):
        d.account(contact)
    return d


def _form(page: str, action: str, step: str | None = None) -> dict[str, str]:
    """The hidden fields of the form posting to `action` (for `step`, if given)."""
    for form in re.findall(r'<form[^>]*action="' + re.escape(action) + r'".*?</form>', page,
                           flags=re.S):
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
        if step is None or fields.get("step") == step:
            return fields
    raise AssertionError(f"no form for {action} {step or ''} on the page")


def test_nothing_is_shown_before_sign_in_and_a_wrong_password_is_refused(desk: Desk) -> None:
    c = desk.client()
    first = c.get("/")
    assert str(first.url).endswith("/login?next=/") and desk.incident not in first.text
    said = desk.sign_in(c, "lab-duty", password="not the password")
    assert said.startswith("403") and "账户、密码或动态码错误" in said
    assert desk.kinds("lab-duty")[-1] == "signin.failed"
    headers = c.get("/login").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_approvers_need_their_second_factor(desk: Desk) -> None:
    said = desk.sign_in(desk.client(), "lab-leader", code="")
    assert said.startswith("403")
    assert desk.store.events(kind="signin.failed")[-1].data["why"] == "second factor"


def test_the_leader_approves_and_the_duty_engineer_is_refused_each_on_record(
        desk: Desk) -> None:
    duty, leader = desk.client(), desk.client()
    page = desk.sign_in(duty, "lab-duty")
    assert desk.incident in page  # on the overview
    page = duty.get(f"/incidents/{desk.incident}").text
    assert "P4.3.3(3)" in page
    with pytest.raises(AssertionError, match="no form"):  # not theirs to approve
        _form(page, "/act/approve", desk.step)
    # A hand-made post with the duty engineer's own valid tokens is refused all the same.
    fields = _form(page, "/act/ack")
    forged = duty.post("/act/approve", data={**fields, "step": desk.step, "shown": "awaiting"})
    assert forged.status_code == 403 and "leadership_group" in forged.text
    assert desk.kinds(desk.step)[-1] == "step.approval_refused"

    desk.sign_in(leader, "lab-leader")
    page = leader.get(f"/incidents/{desk.incident}").text
    done = leader.post("/act/approve", data=_form(page, "/act/approve", desk.step))
    assert done.status_code == 200 and 'id="done"' in done.text
    (approved,) = desk.store.events(kind="step.approved")
    actor = approved.data["actor"]
    assert actor["contact"] == "lab-leader" and actor["via"] == "console"
    assert actor["address"] == "testclient" and len(actor["session"]) == 16


def test_the_two_person_step_needs_two_people_signed_in_apart(desk: Desk) -> None:
    two = next(k.removeprefix(keys.STEP) for k in desk.store.states(keys.STEP)
               if k.endswith("/backend-data"))  # P4.3.3(4): the team and the supervisor
    duty, supervisor = desk.client(), desk.client()
    desk.sign_in(duty, "lab-duty")
    page = duty.get(f"/incidents/{desk.incident}").text
    duty.post("/act/approve", data=_form(page, "/act/approve", two))
    assert desk.store.get_state(keys.step(two))["status"] == "awaiting"
    page = duty.get(f"/incidents/{desk.incident}").text
    with pytest.raises(AssertionError, match="no form"):  # approved once, once only
        _form(page, "/act/approve", two)
    desk.sign_in(supervisor, "lab-supervisor")
    page = supervisor.get(f"/incidents/{desk.incident}").text
    supervisor.post("/act/approve", data=_form(page, "/act/approve", two))
    rec = desk.store.get_state(keys.step(two))
    assert rec["status"] == "done" and [a["by"] for a in rec["approvals"]] == [
        "lab-duty", "lab-supervisor"]
    assert len({a["session"] for a in rec["approvals"]}) == 2


def test_posts_without_the_token_replayed_or_stale_change_nothing(desk: Desk) -> None:
    c = desk.client()
    desk.sign_in(c, "lab-leader")
    page = c.get(f"/incidents/{desk.incident}").text
    fields = _form(page, "/act/approve", desk.step)
    no_csrf = c.post("/act/approve", data={k: v for k, v in fields.items() if k != "csrf"})
    assert no_csrf.status_code == 403
    stale = c.post("/act/approve", data={**fields, "shown": "denied"})
    assert stale.status_code == 409 and "reload" in stale.text
    assert desk.store.events(kind="step.approved") == []
    page = c.get(f"/incidents/{desk.incident}").text
    fields = _form(page, "/act/deny", desk.step)
    first = c.post("/act/deny", data={**fields, "reason": "wait for the bank"})
    assert first.status_code == 200
    again = c.post("/act/deny", data={**fields, "reason": "wait for the bank"})
    assert again.status_code == 409 and "该表单已提交过" in again.text
    assert len(desk.store.events(kind="step.denied")) == 1
    refused = [e.data["why"] for e in desk.store.events(kind="console.post_refused")]
    assert refused == ["csrf", "replayed"]


def test_a_message_link_acknowledges_without_a_password_and_nothing_more(desk: Desk) -> None:
    c = desk.client()
    url = links.url("http://testserver", links.secret(desk.store), "lab-leader", desk.incident)
    page = c.get(url.removeprefix("http://testserver"))
    assert str(page.url).endswith(f"/incidents/{desk.incident}") and "登录后操作" in page.text
    acked = c.post("/act/ack", data=_form(page.text, "/act/ack"))
    assert acked.status_code == 200
    ack = desk.store.events(kind="incident.acked")[-1].data
    assert ack["by"] == "lab-leader" and ack["actor"]["via"] == "link"
    # The link's session may not approve: it is sent to sign in, and nothing changes.
    fields = {**_form(page.text, "/act/ack"), "nonce": "a fresh one"}
    tried = c.post("/act/approve", data={**fields, "step": desk.step, "shown": "awaiting"})
    assert str(tried.url).startswith("http://testserver/login")
    assert desk.store.events(kind="step.approved") == []
    assert c.get("/checks").status_code == 403


def test_an_expired_or_forged_link_is_refused(desk: Desk) -> None:
    class TwoDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 86400

    key = links.secret(desk.store)
    old = URLSafeTimedSerializer(key, salt="vigil.link", signer=TwoDaysAgo).dumps(
        {"c": "lab-leader", "i": desk.incident})
    c = desk.client()
    expired = c.get(f"/l/{old}")
    assert expired.status_code == 403 and "链接无效或已过期" in expired.text
    forged = c.get(f"/l/{links.make('not the key', 'lab-leader', desk.incident)}")
    assert forged.status_code == 403
    assert c.get(f"/incidents/{desk.incident}").url.path == "/login"
    assert [e.kind for e in desk.store.events(kind="console.link_refused")] == [
        "console.link_refused"] * 2


def test_what_people_write_is_shown_as_text(desk: Desk) -> None:
    c = desk.client()
    desk.sign_in(c, "lab-duty")
    page = c.get(f"/incidents/{desk.incident}").text
    c.post("/act/note", data={**_form(page, "/act/note"),
                              "note": "<script>alert(1)</script> 已联系厂商"})
    shown = c.get(f"/incidents/{desk.incident}").text
    assert "<script>alert(1)</script>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 已联系厂商" in shown


def test_a_vendor_sees_only_the_systems_they_serve(desk: Desk) -> None:
    c = desk.client()
    page = desk.sign_in(c, "lab-vendor")  # owns the payment database, not this system
    assert desk.incident not in page
    assert c.get(f"/incidents/{desk.incident}").status_code == 404


def test_the_event_log_is_searched_and_its_chain_verified(desk: Desk) -> None:
    c = desk.client()
    desk.sign_in(c, "lab-duty")
    found = c.get("/events", params={"q": "stop-auto-processing", "verify": "1"}).text
    assert "哈希链完整" in found and desk.step in found
    assert f"{len(desk.store.events())}" in found.split("哈希链完整", 1)[1][:200]
    with desk.store.engine.begin() as conn:  # someone edits history by hand
        conn.exec_driver_sql("UPDATE events SET data = '{}' WHERE seq = 3")
    broken = c.get("/events", params={"verify": "1"}).text
    assert "哈希链损坏于第 3" in broken


def test_expired_sessions_end_and_are_not_kept(desk: Desk) -> None:
    now = dt.datetime.now(dt.UTC)
    old = sessions.start(desk.store, "lab-duty", "console", "a", 1, now - dt.timedelta(hours=2),
                         "zh")
    assert sessions.find(desk.store, old, now) is None  # expired: no longer signs anyone in
    sessions.start(desk.store, "lab-duty", "console", "a", 1, now, "zh")
    assert keys.session(sessions.digest(old)) not in desk.store.states(keys.SESSION)
    assert len(desk.store.states(keys.SESSION)) == 1


def test_repeated_failures_lock_the_account_in_the_console(desk: Desk) -> None:
    c = desk.client()
    for _ in range(desk.inv.console.lock_after):
        assert desk.sign_in(c, "lab-duty", password="wrong wrong").startswith("403")
    said = desk.sign_in(c, "lab-duty")
    assert said.startswith("403") and "账户已锁定" in said
    assert "account.locked" in desk.kinds("lab-duty")


def test_a_page_waiting_on_the_store_does_not_hold_up_another(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """One incident page stuck in a store read (a stand-in that waits) while a second
    person opens the sign-in page: it is served at once, the stuck page later."""
    from vigil.console import views

    reading, release = threading.Event(), threading.Event()
    real = views.incident

    def slow(*args: object, **kwargs: object) -> object:
        reading.set()
        release.wait(20)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(views, "incident", slow)
    with TestClient(desk.app, follow_redirects=True) as client:  # one event loop for both
        assert "lab-duty" in desk.sign_in(client, "lab-duty")
        stuck: list[int] = []
        waiting = threading.Thread(target=lambda: stuck.append(
            client.get(f"/incidents/{desk.incident}").status_code))
        waiting.start()
        assert reading.wait(10)
        started = time.monotonic()
        other = client.get("/login")
        took = time.monotonic() - started
        assert other.status_code == 200 and not release.is_set() and not stuck
        assert took < 5, took
        release.set()
        waiting.join(20)
    assert stuck == [200]


def test_the_language_is_switched_by_a_form_another_site_cannot_send(desk: Desk) -> None:
    c = desk.client()
    page = desk.sign_in(c, "lab-duty")
    assert "总览" in page
    assert c.get("/lang?lang=en&next=/").status_code == 405  # a link cannot switch it
    forged = c.post("/lang", data={"lang": "en", "next": "/"})
    assert forged.status_code == 403 and "Overview" not in c.get("/").text
    switched = c.post("/lang", data=_form(page, "/lang"))
    assert switched.status_code == 200 and "Overview" in switched.text
    assert "Overview" in c.get("/checks").text  # kept in the session
