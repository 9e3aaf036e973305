"""`vigil users add|reset|disable|list`: people's accounts for the console and the CLI.

Run by root on the monitoring server, or by an implementation-team member the CLI has
identified; every change is on record, no password or secret ever is."""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vigil import accounts, clock
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    fail,
    load_inv,
    local,
    open_store,
    out,
    pick_lang,
)
from vigil.cli.identity import AsOpt, os_user, refuse, who
from vigil.domain import Role
from vigil.i18n import Lang
from vigil.identity import Actor, become
from vigil.model import Inventory
from vigil.store import Store

users_app = typer.Typer(no_args_is_help=True, help="People's accounts (console and CLI).")

ContactArg = Annotated[str, typer.Argument(help="The contact's id in the inventory.")]
StdinOpt = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the new password from stdin (scripts); else it is asked "
    "twice on the terminal.")]


def _admin(as_: str | None, inv: Inventory, db: Store, lang: Lang) -> Actor:
    """Root, or an identified implementation-team member, manages accounts."""
    if os.geteuid() == 0 and not as_:
        actor = Actor("root", "unix", f"unix:{os_user()}")
    else:
        actor = who(as_, False, None, inv, db, lang, clock.now())
        if Role.IMPLEMENTATION_TEAM not in inv.contact(actor.contact).roles:
            raise refuse(f"{actor.contact} is not of the implementation team, who manage "
                         f"accounts", lang)
    become(actor)
    return actor


def _new_password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask the password on: give --password-stdin")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        fail("the two passwords differ")
    return first


def _set(contact: str, stdin: bool, as_: str | None, new: bool, inventory: InventoryOpt,
         store: StoreOpt, json_out: bool, lang: str | None,
         vault: VaultOpt) -> None:
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault, lg)
    db = open_store(store, lg)
    actor = _admin(as_, inv, db, lg)
    try:
        secret = accounts.set_password(db, inv, contact, _new_password(stdin), by=actor.contact,
                                       now=clock.now(), new=new)
    except (accounts.AccountError, PermissionError) as exc:
        fail(str(exc))
    uri = accounts.totp_uri(inv, contact, secret) if secret else None
    if json_out:
        sys.stdout.write(json.dumps({"contact": contact, "totp_secret": secret,
                                     "totp_uri": uri}) + "\n")
        return
    zh = lg == "zh"
    out.print(f"{'已为' if zh else 'account '}{escape(contact)}"
              f"{'设置账户' if zh else (' added' if new else ' reset')}")
    if secret:
        out.print("该联系人的角色需要审批：请将以下密钥加入身份验证器（只显示这一次）：" if zh else
                   "Their roles approve steps: put this secret in an authenticator app "
                   "(shown only now):")
        out.print(f"  {secret}\n  {escape(uri or '')}")


@users_app.command("add")
def add(contact: ContactArg, password_stdin: StdinOpt = False, as_: AsOpt = None,
        inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
        lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Give a contact an account: a password, and a second factor if their roles approve."""
    _set(contact, password_stdin, as_, True, inventory, store, json_out, lang,
         vault_password_file)


@users_app.command("reset")
def reset(contact: ContactArg, password_stdin: StdinOpt = False, as_: AsOpt = None,
          inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
          lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """A new password and second factor; unlocks and re-enables the account."""
    _set(contact, password_stdin, as_, False, inventory, store, json_out, lang,
         vault_password_file)


@users_app.command("disable")
def disable(contact: ContactArg, as_: AsOpt = None, inventory: InventoryOpt = None,
            store: StoreOpt = None, lang: LangOpt = None,
            vault_password_file: VaultOpt = None) -> None:
    """Nobody signs in as this contact any more (their console sessions end)."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = _admin(as_, inv, db, lg)
    try:
        accounts.disable(db, contact, by=actor.contact, now=clock.now())
    except accounts.AccountError as exc:
        fail(str(exc))
    out.print(f"已停用 {escape(contact)}" if lg == "zh" else f"disabled {escape(contact)}")


@users_app.command("list")
def list_(inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
          lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Every contact and the state of their account (no secret shown)."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    found = accounts.accounts(db)
    rows: list[dict[str, Any]] = []
    for c in inv.contacts:
        a = found.get(c.id)
        state = "none" if a is None else "disabled" if a["disabled"] else \
            "locked" if a["locked_until"] and a["locked_until"] > clock.now().isoformat() \
            else "active"
        rows.append({"contact": c.id, "unix_user": c.unix_user, "state": state,
                     "second_factor": bool(a and a["totp"]),
                     "changed_at": a["changed_at"] if a else None})
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    zh = lg == "zh"
    table = Table(title="账户" if zh else "Accounts", title_justify="left")
    for col in (("联系人", "Contact"), ("系统用户", "OS user"), ("状态", "State"),
                ("双因素", "2FA"), ("变更于", "Changed")):
        table.add_column(col[0] if zh else col[1])
    for r in rows:
        table.add_row(r["contact"], r["unix_user"] or "", r["state"],
                      "✓" if r["second_factor"] else "", local(r["changed_at"], inv))
    out.print(table)
