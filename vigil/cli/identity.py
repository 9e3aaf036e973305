"""Who runs a command that acts (approve, deny, task done, ack, …): never `--as` on faith.

The operator is the OS user mapped to a contact (`unix_user` in `vigil_contacts`); anyone
else proves a contact with its password and second factor (asked on the terminal, or from
$VIGIL_PASSWORD and $VIGIL_TOTP for a script); root may act for a contact only with
`--override-identity --reason`, and the log says so."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import pwd
import sys
import uuid
from typing import Annotated

import typer
from rich.markup import escape

from vigil import accounts
from vigil.cli.common import EXIT_REFUSED, err
from vigil.identity import Actor
from vigil.model import Inventory
from vigil.store import Store

AsOpt = Annotated[str | None, typer.Option(
    "--as", help="Your contact id (default: the contact mapped to your OS user).")]
OverrideOpt = Annotated[bool, typer.Option(
    "--override-identity", help="Root only: act for the contact --as names without its "
    "password; needs --reason, recorded as an override.")]
ReasonOpt = Annotated[str | None, typer.Option(
    "--reason", help="Why identity is overridden (recorded).")]


def refuse(message: str, lang: str) -> typer.Exit:
    err.print(f"[bold red]vigil:[/] {'身份未确认' if lang == 'zh' else 'identity refused'}: "
              f"{escape(message)}", soft_wrap=True)
    return typer.Exit(EXIT_REFUSED)


def os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def who(as_: str | None, override: bool, reason: str | None, inv: Inventory, db: Store,
        lang: str, now: dt.datetime) -> Actor:
    """The proven operator, or exit 4 with one line saying why not."""
    user = os_user()
    if override:
        if os.geteuid() != 0:
            raise refuse("--override-identity is for root only", lang)
        if not (reason and reason.strip()):
            raise refuse("--override-identity needs --reason", lang)
        if not as_:
            raise refuse("--override-identity needs --as CONTACT", lang)
        _known(inv, as_, lang)
        return Actor(as_, "override", f"unix:{user}", reason=reason.strip())
    mapped = inv.contact_of_unix_user(user)
    if mapped and as_ in (None, mapped.id):
        return Actor(mapped.id, "unix", f"unix:{user}")
    if not as_:
        raise refuse(f"OS user {user!r} is no contact's unix_user: give --as and your "
                     f"password, or map unix_user in vigil_contacts", lang)
    _known(inv, as_, lang)
    password = os.environ.get("VIGIL_PASSWORD") or _ask(f"{as_} password: ", secret=True)
    if password is None:
        raise refuse(f"OS user {user!r} is not {as_}: their password is needed (a terminal, "
                     f"or $VIGIL_PASSWORD)", lang)
    account = accounts.load(db, as_)
    code = None
    if account and account["totp"]:
        code = os.environ.get("VIGIL_TOTP") or _ask(f"{as_} one-time code: ", secret=False)
    try:
        accounts.sign_in(db, inv, as_, password, code, address=f"cli:{user}", now=now)
    except accounts.SignInError as exc:
        raise refuse(str(exc), lang) from None
    return Actor(as_, "password", f"cli:{uuid.uuid4().hex}", address=f"cli:{user}")


def _known(inv: Inventory, contact: str, lang: str) -> None:
    try:
        inv.contact(contact)
    except PermissionError as exc:
        raise refuse(str(exc), lang) from None


def _ask(prompt: str, *, secret: bool) -> str | None:
    if not sys.stdin.isatty():
        return None
    return getpass.getpass(prompt) if secret else input(prompt)
