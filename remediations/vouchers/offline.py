"""Export vouchers to a bundle with its handover record (交接记录), import a bundle into a
party's inbox idempotently and answer with a receipt bundle (P4.3.1(3), P4.3.7)."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil import keys as store_keys  # `keys` is the key folder here
from vigil.clock import local_text
from vigil.files import write_atomically
from vigil.remediations.vouchers.bundle import (
    MAX_TTL,
    BundleRefused,
    Keys,
    check_party,
    check_rows,
    open_bundle,
    voucher_line,
    write_bundle,
)
from vigil.remediations.vouchers.suites import SUITES, Suite
from vigil.remediations.vouchers.voucher import Voucher
from vigil.store import Store

SUFFIX = ".vgb"


def export(vouchers: Iterable[Voucher], *, sender: str, recipient: str, keys: Keys,
           suite: Suite, out_dir: Path, ttl: dt.timedelta, now: dt.datetime,
           store: Store | None = None, supplementary: bool = False, tz: str = "UTC"
           ) -> tuple[Path, dict[str, Any]]:
    """`tz`: the site's timezone, for the handover record people sign (its zone named).
    `supplementary`: the vouchers are supplementary vouchers (补录凭证, P4.3.5(3)d),
    marked so in the manifest and on every voucher, so no party pays them twice.
    The bundle and its handover records appear together or not at all."""
    check_party(sender, "sender")
    check_party(recipient, "recipient")
    if not dt.timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"a bundle is valid for more than 0 and at most {MAX_TTL.days} days")
    keys.require([(sender, "sign", "private"), (recipient, "enc", "public")])
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    path = out_dir / f"{sender}-to-{recipient}-{stamp}{SUFFIX}"
    mark = {"mark": "supplementary"} if supplementary else {}
    written = [path]
    try:  # a source refused halfway leaves no bundle, record or folder of ours
        manifest = write_bundle(path, kind="vouchers", sender=sender, recipient=recipient,
                                rows=({**voucher_line(v), **mark} for v in vouchers),
                                keys=keys, suite=suite, ttl=ttl, now=now,
                                extra={"supplementary": True} if supplementary else None)
        for lang in ("zh", "en"):
            md, page = handover(manifest, path, lang, tz)
            for ext, text in (("md", md), ("html", page)):
                written.append(path.with_name(f"{path.stem}.handover.{lang}.{ext}"))
                write_atomically(written[-1], text.encode("utf-8"))
        if store:
            with store.transaction() as tx:
                tx.set_state(store_keys.exported(manifest["bundle_id"]), {
                    "from": sender, "to": recipient, "count": manifest["count"]})
                tx.append("exchange.exported", manifest["bundle_id"], _summary(manifest, path))
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    return path, manifest


def _summary(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    return {"file": str(path), "from": manifest["from"], "to": manifest["to"],
            "kind": manifest["kind"], "count": manifest["count"],
            "total_amount": manifest["total_amount"], "suite": manifest["suite"],
            "digest": manifest["payload"]["cipher_digest"]}


@dataclass
class Imported:
    manifest: dict[str, Any]
    imported: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    receipt: Path | None = None


def _inbox(inbox: Path, sender: str) -> tuple[Path, bytes, dict[str, str]]:
    path = inbox / f"from-{check_party(sender)}.jsonl"
    known: dict[str, str] = {}
    data = path.read_bytes() if path.exists() else b""
    for line in data.decode("utf-8").splitlines():
        row = json.loads(line)
        known[row["number"]] = row["digest"]
    return path, data, known


def import_bundle(path: Path, *, me: str, keys: Keys, receipt: bool,
                  inbox: Path, store: Store, now: dt.datetime,
                  ttl: dt.timedelta = dt.timedelta(days=3),
                  parties: Iterable[str] | None = None) -> Imported:
    """Verify, then import what is new; a voucher already there with other content is a
    conflict for people, never overwritten. Raises BundleRefused, recorded as an event,
    and CryptoError when a key this import needs is missing; either way nothing is
    imported. `parties`: the inventory's, to which senders are limited."""
    check_party(me, "--as")
    keys.require([(me, "enc", "private")] + ([(me, "sign", "private")] if receipt else []))
    seen = {k.removeprefix(store_keys.BUNDLE) for k in store.states(store_keys.BUNDLE)}
    try:
        opened = open_bundle(path, me=me, keys=keys, now=now, seen=seen, parties=parties)
        manifest = opened.manifest
        if manifest["kind"] == "receipt":
            return _receipt(manifest, opened.rows, store, path, me)
        vouchers = check_rows(opened.rows)
    except BundleRefused as exc:
        store.append("exchange.refused", str(path), {"reason": exc.reason,
                                                    "message": str(exc), "me": me})
        raise
    if receipt:  # its key is checked before anything is written
        keys.require([(manifest["from"], "enc", "public")])
    target, data, known = _inbox(inbox, manifest["from"])
    result = Imported(manifest)
    added = []
    for v in vouchers:
        digest = v.content_digest()
        if v.number not in known:
            line = voucher_line(v)
            if manifest.get("supplementary"):
                line["mark"] = "supplementary"
            added.append(json.dumps(line, ensure_ascii=False) + "\n")
            known[v.number] = digest
            result.imported.append(v.number)
        elif known[v.number] == digest:
            result.duplicates.append(v.number)
        else:
            result.conflicts.append(v.number)
    receipts = ([{"number": n, "status": s} for s, numbers in
                 (("imported", result.imported), ("duplicate", result.duplicates),
                  ("conflict", result.conflicts)) for n in numbers])
    written: list[Path] = []
    try:
        if receipt:  # back in the suite the bundle came in
            result.receipt = path.with_name(
                f"{me}-receipt-for-{manifest['bundle_id'][:8]}{SUFFIX}")
            write_bundle(result.receipt, kind="receipt", sender=me,
                         recipient=manifest["from"], rows=receipts, keys=keys,
                         suite=SUITES[manifest["suite"]], ttl=ttl, now=now,
                         extra={"in_reply_to": manifest["bundle_id"]})
            written.append(result.receipt)
        with store.transaction() as tx:
            tx.set_state(store_keys.bundle(manifest['bundle_id']), {
                "from": manifest["from"], "kind": "vouchers", "imported_at": now.isoformat(),
                "count": manifest["count"]})
            tx.append("exchange.imported", manifest["bundle_id"], {
                **_summary(manifest, path), "imported": len(result.imported),
                "duplicates": len(result.duplicates), "conflicts": result.conflicts[:100],
                "receipt": str(result.receipt) if result.receipt else None})
            if added:  # inside the transaction: a failed write rolls the record back
                inbox.mkdir(parents=True, exist_ok=True)
                write_atomically(target, data + "".join(added).encode("utf-8"))
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    return result


def _receipt(manifest: dict[str, Any], rows: list[dict[str, Any]], store: Store,
             path: Path, me: str) -> Imported:
    """A receipt counts only for a bundle this party sent to the receipt's sender, once."""
    sender, replying_to = manifest["from"], manifest["in_reply_to"]
    sent = store.get_state(store_keys.exported(replying_to))
    if not sent or sent.get("from") != me or sent.get("to") != sender:
        raise BundleRefused("unknown-bundle", f"{path}: a receipt for bundle {replying_to}, "
                                              f"which {me} never sent to {sender}")
    if sent.get("receipt"):
        raise BundleRefused("replayed", f"{path}: bundle {replying_to} was receipted "
                                        f"already ({sent['receipt']})")
    if len(rows) != sent.get("count"):
        raise BundleRefused("counts", f"{path}: a receipt for {len(rows)} vouchers, bundle "
                                      f"{replying_to} carried {sent.get('count')}")
    result = Imported(manifest)
    for row in rows:
        getattr(result, {"imported": "imported", "duplicate": "duplicates"}.get(
            row["status"], "conflicts")).append(row["number"])
    with store.transaction() as tx:
        tx.set_state(store_keys.bundle(manifest['bundle_id']), {"from": sender, "kind": "receipt"})
        tx.set_state(store_keys.exported(replying_to), {**sent, "receipt": manifest["bundle_id"]})
        tx.append("exchange.receipt", replying_to, {
            "file": str(path), "from": sender, "imported": len(result.imported),
            "duplicates": len(result.duplicates), "conflicts": result.conflicts[:100]})
    return result


_WORDS = {
    "zh": {"title": "电子凭证离线交换交接记录", "clause": "依据应急预案 P4.3.1(3)、P4.3.7",
           "bundle": "交换包", "id": "编号", "from": "发送方", "to": "接收方",
           "created": "生成时间", "expires": "有效期至", "suite": "密码算法", "count": "凭证笔数",
           "total": "金额合计（元）", "digest": "密文摘要", "size": "文件大小（字节）",
           "sign": ["交付人（签字）", "接收人（签字）", "监交人（签字）"], "date": "日期",
           "suites": {"sm": "SM2 签名 / SM3 摘要 / SM4-GCM 加密",
                      "intl": "Ed25519 / SHA-256 / AES-256-GCM"}},
    "en": {"title": "Offline voucher exchange: handover record",
           "clause": "Per the emergency plan P4.3.1(3), P4.3.7", "bundle": "Bundle",
           "id": "ID", "from": "From", "to": "To", "created": "Created",
           "expires": "Valid until", "suite": "Cryptography", "count": "Vouchers",
           "total": "Total amount (CNY)", "digest": "Ciphertext digest",
           "size": "File size (bytes)",
           "sign": ["Handed over by (signature)", "Received by (signature)",
                    "Witnessed by (signature)"], "date": "Date",
           "suites": {"sm": "SM2 signature / SM3 digest / SM4-GCM",
                      "intl": "Ed25519 / SHA-256 / AES-256-GCM"}}}


def handover(manifest: dict[str, Any], path: Path, lang: str, tz: str = "UTC"
             ) -> tuple[str, str]:
    """The handover record as Markdown and as a printable HTML page with signature lines."""
    w: dict[str, Any] = _WORDS[lang]
    rows = [(w["bundle"], path.name), (w["id"], manifest["bundle_id"]),
            (w["from"], manifest["from"]), (w["to"], manifest["to"]),
            (w["created"], local_text(manifest["created_at"], tz, seconds=True)),
            (w["expires"], local_text(manifest["expires_at"], tz, seconds=True)),
            (w["suite"], w["suites"][manifest["suite"]]), (w["count"], str(manifest["count"])),
            (w["total"], manifest["total_amount"]),
            (w["digest"], manifest["payload"]["cipher_digest"]),
            (w["size"], str(path.stat().st_size))]
    md = [f"# {w['title']}", "", f"_{w['clause']}_", "", "| | |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in rows]
    md += [""] + [f"{s}: ________________    {w['date']}: ____________" for s in w["sign"]]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in rows)
    lines = "".join(f"<p class=sig>{html.escape(s)}: <span></span> {w['date']}: <span></span></p>"
                    for s in w["sign"])
    page = (f"<!doctype html><html lang={lang}><meta charset=utf-8>"
            f"<title>{html.escape(w['title'])}</title><style>"
            "body{font-family:serif;margin:2cm}table{border-collapse:collapse;width:100%}"
            "th,td{border:1px solid #000;padding:6px;text-align:left;word-break:break-all}"
            "p.sig{margin-top:1.6cm}p.sig span{display:inline-block;width:6cm;"
            "border-bottom:1px solid #000}@media print{body{margin:1cm}}</style>"
            f"<h1>{html.escape(w['title'])}</h1><p><i>{html.escape(w['clause'])}</i></p>"
            f"<table>{cells}</table>{lines}</html>\n")
    return "\n".join(md) + "\n", page
