"""`vigil exchange keygen | export | import`: vouchers by disc when MQ is down (P4.3.7)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from vigil import clock
from vigil.cli.common import (
    EXIT_REFUSED,
    InventoryOpt,
    JsonOpt,
    LangOpt,
    StoreOpt,
    VaultOpt,
    fail,
    load_inv,
    open_store,
    out,
    pick_lang,
)
from vigil.errors import one_line
from vigil.remediations.vouchers.bundle import (
    MAX_TTL,
    BundleRefused,
    Keys,
    PartyNameError,
    check_party,
)
from vigil.remediations.vouchers.offline import export, import_bundle
from vigil.remediations.vouchers.sources import SourceError, vouchers_of, window
from vigil.remediations.vouchers.suites import SUITES, CryptoError

exchange_app = typer.Typer(no_args_is_help=True,
                           help="Offline exchange bundles: vouchers by disc and courier.")

KeysOpt = Annotated[Path, typer.Option("--keys", help="Folder of the parties' PEM keys.")]
SuiteOpt = Annotated[str, typer.Option("--suite", help="sm (SM2/SM3/SM4, default) or intl.")]


def _party(name: str, option: str) -> str:
    try:
        return check_party(name, option)
    except PartyNameError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _suite(name: str) -> Any:
    if name not in SUITES:
        raise typer.BadParameter(f"must be one of {', '.join(SUITES)}", param_hint="--suite")
    return SUITES[name]


@exchange_app.command("keygen")
def keygen(party: Annotated[str, typer.Option("--party")], keys: KeysOpt,
           suite: SuiteOpt = "sm") -> None:
    """Make a party's signing and encryption key pairs (give others the .pub.pem files)."""
    try:
        Keys(keys).generate(_suite(suite), _party(party, "--party"))
    except CryptoError as exc:
        fail(str(exc))
    out.print(f"{keys}/{party}.sign.*.pem, {keys}/{party}.enc.*.pem")


@exchange_app.command("export")
def export_cmd(sender: Annotated[str, typer.Option("--from", help="Your party.")],
               recipient: Annotated[str, typer.Option("--to", help="The receiving party.")],
               keys: KeysOpt,
               out_dir: Annotated[Path, typer.Option("--out", help="Folder for the disc.")],
               source: Annotated[str | None, typer.Option(
                   help="A .csv / .jsonl export instead of the sender's voucher library.")]
               = None,
               date: Annotated[str | None, typer.Option(help="Business date YYYY-MM-DD.")]
               = None,
               since: Annotated[str | None, typer.Option()] = None,
               until: Annotated[str | None, typer.Option()] = None,
               supplementary: Annotated[Path | None, typer.Option(
                   help="Only the vouchers of this `vigil supplementary plan` list, marked "
                        "as supplementary vouchers (补录凭证, P4.3.5(3)d).")] = None,
               suite: SuiteOpt = "sm",
               ttl_hours: Annotated[float, typer.Option(help="Valid this long.")] = 72,
               inventory: InventoryOpt = None, store: StoreOpt = None,
               json_out: JsonOpt = False, lang: LangOpt = None,
               vault_password_file: VaultOpt = None) -> None:
    """Write a signed, encrypted bundle and its handover record (Markdown and HTML)."""
    lg = pick_lang(lang)
    _party(sender, "--from")
    _party(recipient, "--to")
    if not 0 < ttl_hours <= MAX_TTL.total_seconds() / 3600:  # NaN fails too
        raise typer.BadParameter(f"must be more than 0 and at most {MAX_TTL.days * 24}",
                                 param_hint="--ttl-hours")
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    parse = dt.datetime.fromisoformat
    params = window(dt.date.fromisoformat(date) if date else None,
                    parse(since) if since else None, parse(until) if until else None)
    try:
        vouchers = vouchers_of(inv, source or sender, params)
        if supplementary:
            wanted = _numbers(supplementary)
            vouchers = (v for v in vouchers if v.number in wanted)
        path, manifest = export(vouchers, sender=sender, recipient=recipient,
                                keys=Keys(keys), suite=_suite(suite), out_dir=out_dir,
                                ttl=dt.timedelta(hours=ttl_hours), now=clock.now(), store=db,
                                supplementary=supplementary is not None,
                                tz=inv.site.timezone)
    except (SourceError, CryptoError, ValueError) as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({"bundle": str(path), **manifest}, ensure_ascii=False,
                                    indent=2) + "\n")
        return
    out.print((f"已生成交换包 {path}：{manifest['count']} 笔，合计 {manifest['total_amount']} 元；"
               f"交接记录 {path.stem}.handover.zh.html") if lg == "zh" else
              (f"wrote {path}: {manifest['count']} vouchers, total {manifest['total_amount']}; "
               f"handover record {path.stem}.handover.en.html"))


@exchange_app.command("import")
def import_cmd(bundle: Annotated[Path, typer.Argument(help="The bundle file from the disc.")],
               me: Annotated[str, typer.Option("--as", help="Your party.")],
               keys: KeysOpt,
               inbox: Annotated[Path, typer.Option(help="Where imported vouchers go.")],
               no_receipt: Annotated[bool, typer.Option(
                   "--no-receipt", help="Do not write the receipt bundle.")] = False,
               inventory: Annotated[Path | None, typer.Option(
                   "--inventory", "-i", help="Accept bundles only from this inventory's "
                   "parties (always: only from parties whose key is in --keys).")] = None,
               store: StoreOpt = None, json_out: JsonOpt = False, lang: LangOpt = None,
               vault_password_file: VaultOpt = None) -> None:
    """Verify signature, decryption, manifest, counts and totals, then import what is new
    and write the receipt bundle for the way back. Exit 4 when the bundle is refused."""
    lg = pick_lang(lang)
    _party(me, "--as")
    parties = (list(load_inv(inventory, vault_password_file, lg).parties)
               if inventory else None)
    db = open_store(store, lg)
    try:
        result = import_bundle(bundle, me=me, keys=Keys(keys), inbox=inbox, store=db,
                               receipt=not no_receipt, now=clock.now(), parties=parties)
    except BundleRefused as exc:
        out.print(f"[red]{'拒收' if lg == 'zh' else 'refused'} ({exc.reason}): "
                  f"{escape(one_line(str(exc)))}[/]", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except CryptoError as exc:
        fail(f"{exc}; {'未导入任何凭证' if lg == 'zh' else 'nothing imported'}")
    summary = {"bundle_id": result.manifest["bundle_id"], "kind": result.manifest["kind"],
               "imported": len(result.imported), "duplicates": len(result.duplicates),
               "conflicts": result.conflicts,
               "receipt": str(result.receipt) if result.receipt else None}
    if json_out:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    else:
        out.print((f"导入 {summary['imported']} 笔，重复 {summary['duplicates']} 笔，"
                   f"冲突 {len(result.conflicts)} 笔；回执 {summary['receipt']}") if lg == "zh"
                  else (f"imported {summary['imported']}, duplicates "
                        f"{summary['duplicates']}, conflicts {len(result.conflicts)}; "
                        f"receipt {summary['receipt']}"))
    if result.conflicts:
        raise typer.Exit(1)


def _numbers(plan: Path) -> set[str]:
    import csv

    try:
        with plan.open(encoding="utf-8") as fh:
            return {row["number"] for row in csv.DictReader(fh)}
    except (OSError, KeyError) as exc:
        fail(f"{plan}: not a supplementary list ({exc})")
