"""People's accounts for the duty console and the CLI: a password hashed with argon2id and,
for everyone whose roles approve steps of the plan, a second factor (TOTP).

An account lives in the store as `account:<contact>`, never in the inventory; its hash
and TOTP secret never enter an event. Repeated failures lock it for a while (P4.3: an
approval means something only if it is known who gave it)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import secrets
from typing import Any, NotRequired

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import TypeAdapter
from typing_extensions import TypedDict

from vigil import keys
from vigil.model import ConsoleVars, Contact, Inventory
from vigil.runbook import Runbook
from vigil.store import Store, Tx

MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # argon2id with the library's current recommended cost


@functools.cache
def _dummy() -> str:
    # Hashed on first use, not at import: every CLI command imports this module.
    return _HASHER.hash("not a password of anyone's")


class Account(TypedDict):
    contact: str
    hash: str
    totp: str | None  # base32 secret
    disabled: bool
    failures: int
    locked_until: str | None
    last_step: int  # the last TOTP time step used: a code is good once
    changed_at: str
    changed_by: NotRequired[str]


_ACCOUNT: TypeAdapter[Account] = TypeAdapter(Account)


class AccountError(Exception):
    """An account cannot be made or changed as asked."""


class SignInError(Exception):
    """A sign-in refused; the message is safe to show (it never says which part was
    wrong)."""


def approving_roles(runbook: Runbook) -> set[str]:
    return {r.value for s in runbook.all_steps() for r in (*s.approvers, *s.two_person)}


def needs_second_factor(contact: Contact, runbook: Runbook) -> bool:
    return bool({r.value for r in contact.roles} & approving_roles(runbook))


def load(store: Store, contact: str) -> Account | None:
    value = store.get_state(keys.account(contact))
    return _ACCOUNT.validate_python(value) if value is not None else None


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def totp_uri(inv: Inventory, contact: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=contact,
                                               issuer_name=f"Vigil {inv.site.id}")


def set_password(store: Store, inv: Inventory, contact_id: str, password: str, *, by: str,
                 now: dt.datetime, new: bool) -> str | None:
    """Create (`new`) or reset an account; returns the new TOTP secret when the contact's
    roles approve steps (shown once, to be put in an authenticator app)."""
    contact = inv.contact(contact_id)
    _check_password(password)
    with store.transaction() as tx:
        old = tx.get_state(keys.account(contact_id))
        if new and old is not None:
            raise AccountError(f"{contact_id} already has an account: use vigil users reset")
        if not new and old is None:
            raise AccountError(f"{contact_id} has no account: use vigil users add")
        secret = pyotp.random_base32() if needs_second_factor(contact, inv.site_runbook) \
            else None
        account: Account = {"contact": contact_id, "hash": _HASHER.hash(password),
                            "totp": secret, "disabled": False, "failures": 0,
                            "locked_until": None, "last_step": 0,
                            "changed_at": now.isoformat(), "changed_by": by}
        tx.set_state(keys.account(contact_id), account)
        tx.append("account.added" if new else "account.reset", contact_id,
                  {"by": by, "second_factor": secret is not None})
    return secret


def disable(store: Store, contact_id: str, *, by: str, now: dt.datetime) -> None:
    with store.transaction() as tx:
        account = tx.get_state(keys.account(contact_id))
        if account is None:
            raise AccountError(f"{contact_id} has no account")
        account.update(disabled=True, changed_at=now.isoformat(), changed_by=by)
        tx.set_state(keys.account(contact_id), account)
        tx.append("account.disabled", contact_id, {"by": by})


def _step_of(secret: str, code: str, now: dt.datetime) -> int | None:
    """The TOTP time step `code` belongs to, allowing one step of clock drift."""
    totp = pyotp.TOTP(secret)
    if not (code.isdigit() and len(code) == totp.digits):
        return None
    for drift in (0, -1, 1):
        at = now + dt.timedelta(seconds=drift * totp.interval)
        if secrets.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None


def sign_in(store: Store, inv: Inventory, contact_id: str, password: str, code: str | None,
            *, address: str | None, now: dt.datetime,
            policy: ConsoleVars | None = None) -> None:
    """Prove `contact_id` by password (and second factor where the account has one).
    Raises SignInError, having recorded why; locks the account after repeated failures."""
    policy = policy or inv.console
    refusal = ""
    with store.transaction() as tx:  # a refusal is recorded, then raised
        refusal = _attempt(tx, contact_id, password, code, address, now, policy)
    if refusal:
        raise SignInError(refusal)


def _attempt(tx: Tx, contact_id: str, password: str, code: str | None, address: str | None,
             now: dt.datetime, policy: ConsoleVars) -> str:
    account: Account | None = tx.get_state(keys.account(contact_id))
    wrong = "wrong account, password or code"
    if account is None:
        if password:
            _spend_time(password)
        tx.append("signin.failed", contact_id, {"address": address, "why": "no account"})
        return wrong
    if account["disabled"]:
        tx.append("signin.failed", contact_id, {"address": address, "why": "disabled"})
        return "this account is disabled"
    locked = account["locked_until"]
    if locked and now < dt.datetime.fromisoformat(locked):
        tx.append("signin.failed", contact_id, {"address": address, "why": "locked"})
        return (f"this account is locked after {policy.lock_after} failed sign-ins; try "
                f"again later or ask for vigil users reset")
    why = _wrong(account, password, code, now)
    if why:
        account["failures"] += 1
        tx.append("signin.failed", contact_id, {"address": address, "why": why,
                                                "failures": account["failures"]})
        if account["failures"] >= policy.lock_after:
            account["locked_until"] = (now + dt.timedelta(minutes=policy.lock_minutes)
                                       ).isoformat()
            account["failures"] = 0
            tx.append("account.locked", contact_id,
                      {"until": account["locked_until"], "address": address})
        tx.set_state(keys.account(contact_id), account)
        return wrong
    account["failures"], account["locked_until"] = 0, None
    tx.set_state(keys.account(contact_id), account)
    tx.append("signin.ok", contact_id, {"address": address})
    return ""


def _spend_time(password: str) -> None:
    """As long as checking a real account's password: whether an account exists does
    not show in the answer's time."""
    with contextlib.suppress(VerificationError):
        _HASHER.verify(_dummy(), password)


def _wrong(account: Account, password: str, code: str | None, now: dt.datetime) -> str:
    """Why the credentials do not prove the account ("" when they do); a good TOTP code
    is used up."""
    try:
        _HASHER.verify(account["hash"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return "password"
    if account["totp"]:
        step = _step_of(account["totp"], (code or "").strip(), now)
        if step is None:
            return "second factor"
        if step <= account["last_step"]:
            return "second factor used before"
        account["last_step"] = step
    return ""


def accounts(store: Store) -> dict[str, Any]:
    return {k.removeprefix(keys.ACCOUNT): v for k, v in store.states(keys.ACCOUNT).items()}
