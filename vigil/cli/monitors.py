"""`vigil monitors`: the daemons sharing this store, who leads, since when, each one's
last heartbeat."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any
from zoneinfo import ZoneInfo

from rich.markup import escape
from rich.table import Table

from vigil import lease
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    load_inv,
    open_store,
    out,
    pick_lang,
)
from vigil.clock import local_text
from vigil.store import Store


def leader_view(db: Store) -> dict[str, Any]:
    """Who leads (None: nobody holds a live lease), since when, with which epoch, and every
    daemon's heartbeat."""
    found, held, now = lease.monitors(db)
    return {"leader": held.holder if held else None, "since": held.since if held else None,
            "epoch": held.epoch if held else None, "expires": held.expires if held else None,
            "now": now, "monitors": [dataclasses.asdict(m) for m in found]}


def leader_line(view: dict[str, Any], tz: ZoneInfo, lang: str) -> str:
    if not view["leader"]:
        return "无守护进程主控（租约已过期）" if lang == "zh" else \
            "no daemon leads (no live lease)"
    since = local_text(view["since"], tz, seconds=True)
    return (f"主控：{view['leader']}，自 {since} 起，纪元 {view['epoch']}" if lang == "zh" else
            f"leader: {view['leader']} since {since}, epoch {view['epoch']}")


def monitors(inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
             lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """The `vigil watch` daemons sharing this store: who leads, since when, the lease's
    epoch, and each daemon's last heartbeat."""
    lg = pick_lang(lang)
    tz = ZoneInfo(load_inv(inventory, vault_password_file, lg).site.timezone)
    view = leader_view(open_store(store, lg))
    if json_out:
        sys.stdout.write(json.dumps(view, ensure_ascii=False, indent=2) + "\n")
        return
    out.print(escape(leader_line(view, tz, lg)))
    zh = lg == "zh"
    table = Table(title_justify="left")
    for col in (("守护进程", "Daemon"), ("角色", "Role"), ("启动于", "Started"),
                ("最近心跳", "Last heartbeat")):
        table.add_column(col[0] if zh else col[1], overflow="fold")
    for m in view["monitors"]:
        role = ("主控" if zh else "leader") if m["leading"] else ("备用" if zh else "standby")
        beat = local_text(m["heartbeat"], tz, seconds=True)
        ago = f"{m['heartbeat_age_s']:.0f} 秒前" if zh else f"{m['heartbeat_age_s']:.0f} s ago"
        table.add_row(escape(m["name"]), role,
                      local_text(m["started"], tz, seconds=True),
                      f"{beat}（{ago}）" if zh else f"{beat} ({ago})")
    out.print(table)
