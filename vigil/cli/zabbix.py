"""`vigil zabbix sync`: the county's Zabbix shows each system's level and Vigil's heartbeat."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from vigil.cli.common import InventoryOpt, JsonOpt, LangOpt, VaultOpt, load_inv, out, pick_lang
from vigil.errors import UserError

zabbix_app = typer.Typer(no_args_is_help=True,
                         help="The county's Zabbix: Vigil's systems, levels and heartbeat.")


@zabbix_app.command("sync")
def sync_cmd(inventory: InventoryOpt = None,
             dry_run: Annotated[bool, typer.Option(
                 "--dry-run", help="Print what would change; change nothing.")] = False,
             json_out: JsonOpt = False, lang: LangOpt = None,
             vault_password_file: VaultOpt = None) -> None:
    """Make the Zabbix objects of this site (vigil_zabbix in the inventory) match it: a host
    group, a template with the plan's levels as trigger severities, a host a system with an
    item a check, and Vigil's heartbeat with a nodata() trigger. Touches only what it
    created. Exit 0 whether or not something changed; 3 when Zabbix refuses."""
    from vigil.zabbix.api import connect
    from vigil.zabbix.sync import sync

    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    if inv.zabbix is None:
        raise UserError(f"{inv.path}: no vigil_zabbix in group 'all' (url, user, password)")
    changes = sync(connect(inv.zabbix), inv, inv.zabbix, dry_run=dry_run)
    if json_out:
        sys.stdout.write(json.dumps({"dry_run": dry_run, "changes": [
            {"verb": c.verb, "what": c.what} for c in changes]}, ensure_ascii=False,
            indent=2) + "\n")
        return
    for change in changes:
        out.print(escape(str(change)))
    zh = lg == "zh"
    if not changes:
        out.print(f"Zabbix {inv.zabbix.url}：无需更改" if zh else
                  f"Zabbix {inv.zabbix.url}: nothing to change")
    elif dry_run:
        out.print(f"共 {len(changes)} 项更改（演练，未执行）" if zh else
                  f"{len(changes)} change(s) (dry run: nothing changed)")
    else:
        out.print(f"已执行 {len(changes)} 项更改" if zh else f"{len(changes)} change(s) made")
