"""`vigil inventory validate | show`."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.table import Table

from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    VaultOpt,
    load_inv,
    out,
    pick_lang,
)
from vigil.i18n import t

inventory_app = typer.Typer(no_args_is_help=True, help="Validate and show an inventory.")


@inventory_app.command("validate")
def inventory_validate(inventory: InventoryOpt = None, json_out: JsonOpt = False,
                       lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Load and validate an inventory; exit 3 with a message naming file, host and field."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    if json_out:
        sys.stdout.write(inv.model_dump_json(indent=2) + "\n")
        return
    out.print(t("inventory.ok", lg, hosts=len(inv.hosts), systems=len(inv.systems),
                checks=len(inv.checks), contacts=len(inv.contacts)))


@inventory_app.command("show")
def inventory_show(inventory: InventoryOpt = None, lang: LangOpt = None,
                   vault_password_file: VaultOpt = None) -> None:
    """The systems of an inventory, their fault classes, parties and dependencies."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    table = Table(title=inv.site.name.get(lg), title_justify="left")
    for col in ("system", "class", "party", "host", "depends", "check"):
        table.add_column(t(f"col.{col}", lg), overflow="fold")
    for s in inv.systems.values():
        table.add_row(f"{escape(s.name.get(lg))} [dim]({s.id})[/]",
                      f"{t(f'class.{s.fault_class.value}', lg)} {s.fault_class.clause}",
                      escape(inv.parties[s.party].name.get(lg)), s.host,
                      ", ".join(s.depends_on), ", ".join(s.checks))
    out.print(table)

