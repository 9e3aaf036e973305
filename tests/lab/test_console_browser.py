"""The duty console in a real browser (Debian's chromium through Selenium) against the lab
with the daemon running and serving it: sign in; a real fault appears on the overview
without a reload; the two-person step needs two people in two browsers; the leader
approves the backup line while the duty engineer's attempt is refused; a message's signed
link acknowledges; an expired link, a post without its token and a replayed post are
refused; a phone-sized overview; lock-out after repeated failures."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.conftest import ROOT
from tests.lab.test_drills import line_back  # noqa: F401 (a fixture: the line comes back)
from tests.lab.watcher import Watch, wait_until
from vigil import lab, links

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "build/test-artifacts"
PASSWORD = "lab console 1"

if not (CHROMIUM.exists() and DRIVER.exists()):
    pytest.skip("Debian's chromium and chromium-driver are not installed "
                "(lab/install-packages.sh)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Callable[..., WebDriver]]:
    made: list[WebDriver] = []

    def make(width: int = 1200, height: int = 900) -> WebDriver:
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--window-size={width},{height}",
                    f"--user-data-dir={tmp_path / f'chromium-{len(made)}'}"):
            opts.add_argument(arg)
        made.append(webdriver.Chrome(service=Service(str(DRIVER)), options=opts))
        if width < 500:  # below a desktop window's least width: emulate the phone's screen
            made[-1].execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
        return made[-1]

    yield make
    for b in made:
        b.quit()


class Console:
    def __init__(self, w: Watch, port: int) -> None:
        self.w, self.base = w, f"http://127.0.0.1:{port}"
        self.secrets: dict[str, str | None] = {}
        self.used: dict[str, int] = {}

    def account(self, contact: str) -> None:
        run = self.w.vigil("users", "add", contact, "--password-stdin", "--json",
                           stdin=PASSWORD + "\n")
        assert run.returncode == 0, run.stderr
        self.secrets[contact] = json.loads(run.stdout)["totp_secret"]

    def code(self, contact: str) -> str:
        """A fresh one-time code (each is good once): wait for the next time step."""
        secret = self.secrets[contact]
        if not secret:
            return ""
        totp = pyotp.TOTP(secret)

        def step() -> int:
            return int(time.time() // totp.interval)

        wait_until("a new one-time code", lambda: step() > self.used.get(contact, 0),
                   timeout=totp.interval + 5)
        self.used[contact] = step()
        return totp.now()

    def sign_in(self, b: WebDriver, contact: str, password: str = PASSWORD,
                code: str | None = None) -> None:
        b.get(f"{self.base}/login")
        b.find_element(By.ID, "contact").send_keys(contact)
        b.find_element(By.ID, "password").send_keys(password)
        b.find_element(By.ID, "code").send_keys(self.code(contact) if code is None else code)
        b.find_element(By.ID, "signin").click()


def _text(b: WebDriver) -> str:
    return str(b.execute_script("return document.body ? document.body.innerText : ''"))


def _until(b: WebDriver, what: str, predicate: Callable[[WebDriver], object],
           timeout: float = 60) -> None:
    try:
        WebDriverWait(b, timeout, poll_frequency=0.3,
                      ignored_exceptions=(StaleElementReferenceException,)).until(predicate)
    except Exception as exc:
        raise AssertionError(f"timed out waiting for: {what}\n{_text(b)[:2000]}") from exc


def _post_js(b: WebDriver, path: str, fields: dict[str, str]) -> int:
    """POST from the page as a script would, returning the HTTP status."""
    return int(b.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1]),"
        " redirect: 'manual'}).then(r => done(r.type === 'opaqueredirect' ? 303 : r.status))"
        ".catch(() => done(0));",
        path, fields))


def _hidden(b: WebDriver, form_selector: str) -> dict[str, str]:
    form = b.find_element(By.CSS_SELECTOR, form_selector)
    return {str(i.get_attribute("name")): str(i.get_attribute("value"))
            for i in form.find_elements(By.CSS_SELECTOR, "input[type=hidden]")}


def test_the_console_in_a_browser(watches: Callable[..., Watch], tmp_path: Path,
                                  browsers: Callable[..., WebDriver],
                                  line_back: None) -> None:  # noqa: F811
    port = _free_port()
    # Sessions outlive the day the test moves the clock on.
    site = {"vigil_console": {"url": f"http://127.0.0.1:{port}", "session_hours": 72},
            "vigil_runbook": {
                "overrides": {"infrastructure.III.backup-line": {
                    "kind": "approval", "approvers": ["leadership_group"]}},
                # A two-person approval at level IV, so the rule is seen at once (P6: a
                # site adapts the plan; the rule is P4.3.3(4)'s).
                "add": {"infrastructure": {"IV": [{
                    "id": "joint-check", "clause": "P4.3.3(4)", "kind": "approval",
                    "zh": "实施小组与领导小组共同确认抢修方案",
                    "en": "Team and leadership confirm the repair together",
                    "approvers": ["implementation_team", "leadership_group"],
                    "two_person": ["implementation_team", "leadership_group"]}]}}}}
    w = watches(tmp_path, limit="finance-router*", site=site,
                extra=("--serve", f"127.0.0.1:{port}"))
    console = Console(w, port)
    for contact in ("lab-duty", "lab-leader", "lab-pboc"):
        console.account(contact)
    # What the leader is told from now on: a slow first look at the router (its SSH host
    # check, on a busy machine) may open the incident before the line is cut.
    messages = lab.lab_dir() / "messages/lab-leader.log"
    seen = messages.stat().st_size if messages.exists() else 0
    w.start()
    wait_until("the console answers", lambda: _answers(port), timeout=60)

    duty, leader = browsers(), browsers()
    console.sign_in(duty, "lab-duty")
    _until(duty, "the overview", lambda b: b.find_elements(By.ID, "count-IV"))

    # A real fault: the primary line is cut; the open overview shows it by itself.
    lab.component("net").set_line("primary", False)  # type: ignore[attr-defined]
    _until(duty, "the incident on the overview, no reload",
           lambda b: bool(b.find_elements(By.CSS_SELECTOR, "tr[data-incident^='finance-router']")),
           timeout=90)
    incident = duty.find_element(By.CSS_SELECTOR, "tr[data-incident^='finance-router']"
                                 ).get_attribute("data-incident")
    assert incident

    # The two-person step: the duty engineer approves, and it still waits for the leader.
    duty.get(f"{console.base}/incidents/{incident}")
    _until(duty, "the joint step", lambda b: b.find_elements(
        By.CSS_SELECTOR, "tr[data-step$='/joint-check'] button.approve"))
    duty.find_element(By.CSS_SELECTOR, "tr[data-step$='/joint-check'] button.approve").click()
    _until(duty, "approved once", lambda b: b.find_elements(By.ID, "done"))
    assert (w.step("/IV/joint-check") or {}).get("status") == "awaiting"

    # A message's signed link, as delivered to the leader, acknowledges without a password.
    wait_until("the leader's message with a link", lambda: _link(messages, seen, incident)
               is not None, timeout=60)
    link = _link(messages, seen, incident)
    assert link
    leader.get(link)
    _until(leader, "the incident via the link", lambda b: b.find_elements(By.ID, "ack"))
    leader.find_element(By.ID, "ack").click()
    _until(leader, "acknowledged", lambda b: b.find_elements(By.ID, "acked"))
    acked = w.store().events(kind="incident.acked")[-1].data
    assert acked["by"] == "lab-leader" and acked["actor"]["via"] == "link"
    assert "登录后操作" in _text(leader)  # approving needs a sign-in

    # The leader signs in and gives the second half; the step is done.
    console.sign_in(leader, "lab-leader")
    leader.get(f"{console.base}/incidents/{incident}")
    _until(leader, "the joint step for the leader", lambda b: b.find_elements(
        By.CSS_SELECTOR, "tr[data-step$='/joint-check'] button.approve"))
    leader.find_element(By.CSS_SELECTOR, "tr[data-step$='/joint-check'] button.approve").click()
    wait_until("the joint step done", lambda: (w.step("/IV/joint-check") or {}).get(
        "status") == "done")
    approvals = w.step("/IV/joint-check")["approvals"]  # type: ignore[index]
    assert [a["by"] for a in approvals] == ["lab-duty", "lab-leader"]

    # An expired link is refused and signs nobody in.
    old = URLSafeTimedSerializer(links.secret(w.store()), salt="vigil.link",
                                 signer=_TwoDaysAgo).dumps({"c": "lab-leader", "i": incident})
    stranger = browsers()
    stranger.get(f"{console.base}/l/{old}")
    assert "链接无效或已过期" in _text(stranger)
    stranger.get(f"{console.base}/incidents/{incident}")
    assert stranger.current_url.startswith(f"{console.base}/login")

    # Lock-out: repeated wrong passwords, then even the right one is refused.
    for _ in range(5):
        console.sign_in(stranger, "lab-pboc", password="not the password", code="")
        _until(stranger, "refused", lambda b: b.find_elements(By.ID, "error"))
    console.sign_in(stranger, "lab-pboc")
    _until(stranger, "locked", lambda b: "账户已锁定" in _text(b))

    # A phone-sized screen: the overview fits its width; the screenshot is kept.
    phone = browsers(390, 844)
    console.sign_in(phone, "lab-duty")
    _until(phone, "the overview on a phone", lambda b: b.find_elements(
        By.CSS_SELECTOR, "tr[data-incident]"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert phone.save_screenshot(str(ARTIFACTS / "console-phone-overview.png"))
    wide = phone.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect()"
        ".right > 391).slice(-5).map(e => e.tagName + '.' + e.className"
        " + '#' + e.id)")
    assert phone.execute_script("return document.documentElement.scrollWidth") <= 390, wide
    # A day later the backup line waits for the leadership group: the duty engineer's
    # attempt is refused, the leader's goes through, and the line switches for real.
    w.jump(25)
    wait_until("backup line asked", lambda: bool(w.step("/III/backup-line")), timeout=60)
    key = w.step("/III/backup-line")["key"]  # type: ignore[index]
    duty.get(f"{console.base}/incidents/{incident}")
    _until(duty, "the backup-line row", lambda b: b.find_elements(
        By.CSS_SELECTOR, f"tr[data-step='{key}']"))
    assert not duty.find_elements(By.CSS_SELECTOR, f"tr[data-step='{key}'] button.approve")
    fields = {**_hidden(duty, "form[action='/act/note']"), "step": key, "shown": "awaiting"}
    assert _post_js(duty, "/act/approve", fields) == 403
    assert w.store().events(subject=key)[-1].kind == "step.approval_refused"

    # Posts without the form's token, or replayed, change nothing.
    assert _post_js(duty, "/act/ack", {"incident": incident}) == 403
    duty.get(f"{console.base}/incidents/{incident}")  # forms with unused nonces
    note = {**_hidden(duty, "form[action='/act/note']"), "note": "已到机房"}
    assert _post_js(duty, "/act/note", note) == 303
    assert _post_js(duty, "/act/note", note) == 409
    assert [e.data["note"] for e in w.store().events(kind="incident.noted")] == ["已到机房"]

    leader.get(f"{console.base}/incidents/{incident}")
    _until(leader, "the approve button", lambda b: b.find_elements(
        By.CSS_SELECTOR, f"tr[data-step='{key}'] button.approve"))
    leader.find_element(By.CSS_SELECTOR, f"tr[data-step='{key}'] button.approve").click()
    _until(leader, "approved", lambda b: b.find_elements(By.ID, "done"))
    wait_until("backup line in use", lambda: (w.step("/III/backup-line") or {}).get(
        "status") in ("succeeded", "failed"), timeout=120)
    assert w.step("/III/backup-line")["status"] == "succeeded"  # type: ignore[index]
    (approved,) = [e for e in w.store().events(kind="step.approved") if e.subject == key]
    assert approved.data["actor"]["contact"] == "lab-leader"
    assert approved.data["actor"]["via"] == "console"

    assert w.stop() == 0


class _TwoDaysAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 2 * 86400


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _link(messages: Path, seen: int, incident: str) -> str | None:
    if not messages.exists():
        return None
    with messages.open("rb") as f:
        f.seek(seen)
        text = f.read().decode("utf-8", "replace")
    found = re.findall(r"(http://127\.0\.0\.1:\d+/l/[A-Za-z0-9_.\-]+)", text)
    return found[-1] if found and incident in text else None

