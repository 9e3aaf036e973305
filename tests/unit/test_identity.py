"""Who acts is proven, not claimed: the CLI refuses an unmapped operator, acts as the OS
user's contact or on a password and one-time code, records root's override; one session
never supplies both halves of a two-person approval; repeated failures lock an account.
Real store, real argon2 and TOTP, the real `vigil` process."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pyotp
import pytest
import yaml

from tests.conftest import ROOT, Run, VigilRunner
from tests.unit.test_executor import Drill, _peripheral_at
from vigil import accounts
from vigil.identity import Actor, acting
from vigil.inventory import load_inventory
from vigil.model import Inventory
from vigil.remediations import steps
from vigil.store import Store

DEMO = ROOT / "inventory/demo"
PASSWORD = "correct horse battery"


def _demo_with(tmp_path: Path, **contact: object) -> Path:
    """The demo inventory with its duty engineer changed (e.g. mapped to an OS user)."""
    copy = tmp_path / "inv"
    shutil.copytree(DEMO, copy)
    path = copy / "group_vars/all/site.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["vigil_contacts"][0].update(contact)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return copy


def _acts(store: Store) -> list[dict[str, object]]:
    return [e.data for e in store.events() if e.kind == "silence.added"]


def _silence(vigil: VigilRunner, inv: Path, *more: str,
             env: dict[str, str] | None = None) -> Run:
    return vigil("silence", "add", "-i", str(inv), "--system", "monitoring-server",
                 "--until", "1h", "--reason", "disk swap", *more, "--lang", "en", env=env)


@pytest.mark.skipif(os.geteuid() != 0, reason="the CLI's OS user is root in CI")
def test_the_cli_refuses_an_operator_it_cannot_identify(vigil: VigilRunner, store_path: Path,
                                                        tmp_path: Path) -> None:
    run = _silence(vigil, DEMO)
    assert run.code == 4 and "no contact's unix_user" in run.err
    run = _silence(vigil, DEMO, "--as", "ops-duty")  # a claim without a password
    assert run.code == 4 and "password is needed" in run.err
    run = _silence(vigil, DEMO, "--as", "ops-duty", env={"VIGIL_PASSWORD": "guess-guess"})
    assert run.code == 4 and "wrong account" in run.err
    assert _acts(Store(str(store_path))) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the CLI's OS user is root in CI")
def test_the_mapped_os_user_acts_as_its_contact(vigil: VigilRunner, store_path: Path,
                                                tmp_path: Path) -> None:
    inv = _demo_with(tmp_path, unix_user="root")
    run = _silence(vigil, inv)
    assert run.code == 0, run.err
    (data,) = _acts(Store(str(store_path)))
    assert data["by"] == "ops-duty"
    assert data["actor"] == {"contact": "ops-duty", "via": "unix", "session": "unix:root"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the override is root's")
def test_root_s_override_needs_a_reason_and_is_recorded_as_one(vigil: VigilRunner,
                                                               store_path: Path) -> None:
    run = vigil("ack", "x", "-i", str(DEMO), "--as", "ops-duty", "--override-identity",
                "--lang", "en")
    assert run.code == 4 and "needs --reason" in run.err
    run = _silence(vigil, DEMO, "--as", "ops-duty", "--override-identity")
    assert run.code == 0, run.err
    (data,) = _acts(Store(str(store_path)))
    assert data["actor"] == {"contact": "ops-duty", "via": "override", "session": "unix:root",
                             "reason": "disk swap"}


def test_a_password_and_a_fresh_one_time_code_prove_a_contact(vigil: VigilRunner,
                                                              store_path: Path) -> None:
    made = vigil("users", "add", "ops-duty", "--password-stdin", "--json", "-i", str(DEMO),
                 input=PASSWORD + "\n")
    assert made.code == 0, made.err
    secret = json.loads(made.out)["totp_secret"]  # the duty engineer's roles approve
    assert secret and PASSWORD not in made.out
    code = pyotp.TOTP(secret).now()
    env = {"VIGIL_PASSWORD": PASSWORD, "VIGIL_TOTP": code}
    run = _silence(vigil, DEMO, "--as", "ops-duty", env=env)
    assert run.code == 0, run.err
    store = Store(str(store_path))
    (data,) = _acts(store)
    assert data["actor"]["via"] == "password"  # type: ignore[index]
    again = _silence(vigil, DEMO, "--as", "ops-duty", env=env)  # the same code, replayed
    assert again.code == 4 and "wrong account" in again.err
    assert len(_acts(store)) == 1
    log = json.dumps([e.data for e in store.events()])
    assert PASSWORD not in log and secret not in log


def test_repeated_failures_lock_the_account_even_for_the_right_password(tmp_path: Path
                                                                        ) -> None:
    inv = load_inventory(DEMO)
    store = Store(str(tmp_path / "s.db"))
    now = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
    secret = accounts.set_password(store, inv, "ops-duty", PASSWORD, by="root", now=now,
                                   new=True)
    assert secret
    for _ in range(inv.console.lock_after):
        with pytest.raises(accounts.SignInError, match="wrong"):
            accounts.sign_in(store, inv, "ops-duty", "not it at all", None, address="a",
                             now=now)
    right = pyotp.TOTP(secret).at(now)
    with pytest.raises(accounts.SignInError, match="locked"):
        accounts.sign_in(store, inv, "ops-duty", PASSWORD, right, address="a", now=now)
    later = now + dt.timedelta(minutes=inv.console.lock_minutes + 1)
    accounts.sign_in(store, inv, "ops-duty", PASSWORD, pyotp.TOTP(secret).at(later),
                     address="a", now=later)
    kinds = [e.kind for e in store.events()]
    assert kinds.count("signin.failed") == inv.console.lock_after + 1
    assert "account.locked" in kinds and kinds[-1] == "signin.ok"


@pytest.fixture(scope="module")
def lab_inv() -> Inventory:
    return load_inventory(ROOT / "inventory/lab")


def test_one_session_never_gives_both_approvals_of_a_two_person_step(
        tmp_path: Path, lab_inv: Inventory) -> None:
    drill = Drill(lab_inv, Store(str(tmp_path / "s.db")))
    _peripheral_at(drill, 9)  # level I: P4.3.3(4), the team and the supervisor
    book = drill.executor.runbook
    with acting(Actor("lab-duty", "console", "session-1")):
        steps.approve(drill.store, lab_inv, book, "backend-data", "lab-duty", drill.now)
    with acting(Actor("lab-supervisor", "console", "session-1")), \
            pytest.raises(PermissionError, match="from this session"):
        steps.approve(drill.store, lab_inv, book, "backend-data", "lab-supervisor", drill.now)
    assert drill.rec("/I/backend-data")["status"] == "awaiting"
    with acting(Actor("lab-supervisor", "console", "session-2")):
        rec = steps.approve(drill.store, lab_inv, book, "backend-data", "lab-supervisor",
                            drill.now)
    assert rec["status"] == "done"
    approved = [e.data["actor"] for e in drill.store.events(kind="step.approved")]
    assert [(a["contact"], a["session"]) for a in approved] == [
        ("lab-duty", "session-1"), ("lab-supervisor", "session-2")]
