"""What every command shares: the consoles, the common options and the helpers that turn
a bad inventory, store or setting into one line on stderr with exit 3."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

from vigil.clock import local_text
from vigil.errors import one_line
from vigil.i18n import Lang, default_lang, t
from vigil.paths import PROJECT_ENV, ProjectDirError, demo_inventory, project_dir

if TYPE_CHECKING:  # imported where used: `vigil --version` needs neither
    from vigil.model import Inventory
    from vigil.store import Store

EXIT_ERROR = 3  # an inventory, store or usage error (and Nagios' unknown)
EXIT_REFUSED = 4  # a person or a bundle refused: wrong role, forged, expired, …

# Piped output (a file, a pager, CI logs) gets wide tables instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)

InventoryOpt = Annotated[Path | None, typer.Option(
    "--inventory", "-i", envvar="VIGIL_INVENTORY", show_envvar=False,
    help="Inventory directory or file (default: $VIGIL_INVENTORY, else the embedded demo).")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Event store URL or SQLite path (default: $VIGIL_STORE, else "
    "~/.local/state/vigil/vigil.db).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
LangOpt = Annotated[str | None, typer.Option(
    "--lang", help="zh (default) or en; also $VIGIL_LANG.")]
ProjectOpt = Annotated[Path | None, typer.Option(
    "--project-dir", help="The Ansible project to run (playbooks/, roles/): default "
    "$VIGIL_PROJECT_DIR, else the inventory's vigil_project_dir, else this checkout.")]
VaultOpt = Annotated[Path | None, typer.Option(
    "--vault-password-file", help="ansible-vault password file (or $ANSIBLE_VAULT_PASSWORD_FILE).")]


def pick_lang(value: str | None) -> Lang:
    if value is None:
        return default_lang()
    if value not in ("zh", "en"):
        raise typer.BadParameter("must be zh or en", param_hint="--lang")
    return "en" if value == "en" else "zh"


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]vigil:[/] {escape(one_line(message))}", soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)


def load_inv(inventory: Path | None, vault: Path | None, lang: Lang) -> Inventory:
    from vigil.inventory import InventoryError, load_inventory

    try:
        return load_inventory(inventory or demo_inventory(),
                              vault_password_file=str(vault) if vault else None)
    except InventoryError as exc:
        fail(f"{t('inventory.error', lang)}: {exc}")


def project_folder(option: Path | None, inv: Inventory, *,
                   required: bool = True) -> Path | None:
    """The Ansible project to run (vigil.paths); None when not required and not set."""
    try:
        return project_dir(option, inv.project_dir, inv.path)
    except ProjectDirError as exc:
        if not required and not (option or os.environ.get(PROJECT_ENV) or inv.project_dir):
            return None
        fail(str(exc))


def open_store(url: str | None, lang: Lang, *, connect: bool = True) -> Store:
    from vigil.store import Store, StoreError

    try:
        return Store(url, connect=connect)
    except StoreError as exc:
        fail(f"{t('store.error', lang)}: {exc}")


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")


def parse_time(text: str, inv: Inventory, now: dt.datetime, *, past: bool = False
               ) -> dt.datetime:
    """`now`, a span (`90m`, `2h`, `1d`: from now, or that long ago when `past`), or a
    time (`2026-12-03 20:00`, in the site's timezone unless it names one)."""
    if text == "now":
        return now
    span = _SPAN.match(text)
    if span:
        length = dt.timedelta(seconds=float(span[1]) * {"m": 60, "h": 3600, "d": 86400}[span[2]])
        return now - length if past else now + length
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not a time: give `now`, 90m, 2h, 1d or 2026-12-03 20:00")
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(inv.site.timezone))


def local(iso: str | None, inv: Inventory) -> str:
    """An ISO time of the store in the site's local time, its zone named."""
    return local_text(iso, inv.site.timezone)
