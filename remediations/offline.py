"""Export vouchers to a bundle with its handover record (交接记录), import a bundle into a
party's inbox idempotently and answer with a receipt bundle (P4.3.1(3), P4.3.7)."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediations.bundle import (
    BundleRefused,
    Keys,
    check_rows,
    open_bundle,
    voucher_line,
    write_bundle,
)
from remediations.suites import SUITES, Suite
from remediations.vouchers import Voucher
from vigil.store import Store

SUFFIX = ".vgb"


def export(vouchers: Iterable[Voucher], *, sender: str, recipient: str, keys: Keys,
           suite: Suite, out_dir: Path, ttl: dt.timedelta, now: dt.datetime,
           store: Store | None = None, supplementary: bool = False) -> tuple[Path, dict[str, Any]]:
    """`supplementary`: the vouchers are supplementary vouchers (补录凭证, P4.3.5(3)d),
    marked so in the manifest and on every voucher, so no party pays them twice."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    path = out_dir / f"{sender}-to-{recipient}-{stamp}{SUFFIX}"
    mark = {"mark": "supplementary"} if supplementary else {}
    manifest = write_bundle(path, kind="vouchers", sender=sender, recipient=recipient,
                            rows=({**voucher_line(v), **mark} for v in vouchers), keys=keys,
                            suite=suite, ttl=ttl, now=now,
                            extra={"supplementary": True} if supplementary else None)
    for lang in ("zh", "en"):
        md, page = handover(manifest, path, lang)
        path.with_name(f"{path.stem}.handover.{lang}.md").write_text(md, encoding="utf-8")
        path.with_name(f"{path.stem}.handover.{lang}.html").write_text(page, encoding="utf-8")
    if store:
        store.append("exchange.exported", manifest["bundle_id"], _summary(manifest, path))
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


def _inbox(inbox: Path, sender: str) -> tuple[Path, dict[str, str]]:
    path = inbox / f"from-{sender}.jsonl"
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            known[row["number"]] = row["digest"]
    return path, known


def import_bundle(path: Path, *, me: str, keys: Keys, receipt: bool,
                  inbox: Path, store: Store, now: dt.datetime,
                  ttl: dt.timedelta = dt.timedelta(days=3)) -> Imported:
    """Verify, then import what is new; a voucher already there with other content is a
    conflict for people, never overwritten. Raises BundleRefused, recorded as an event."""
    seen = {k.removeprefix("bundle:") for k in store.states("bundle:")}
    try:
        opened = open_bundle(path, me=me, keys=keys, now=now, seen=seen)
        manifest = opened.manifest
        if manifest["kind"] == "receipt":
            return _receipt(opened.manifest, opened.rows, store, path)
        vouchers = check_rows(opened.rows)
    except BundleRefused as exc:
        store.append("exchange.refused", str(path), {"reason": exc.reason,
                                                    "message": str(exc), "me": me})
        raise
    inbox.mkdir(parents=True, exist_ok=True)
    target, known = _inbox(inbox, manifest["from"])
    result = Imported(manifest)
    with target.open("a", encoding="utf-8") as fh:
        for v in vouchers:
            digest = v.content_digest()
            if v.number not in known:
                line = voucher_line(v)
                if manifest.get("supplementary"):
                    line["mark"] = "supplementary"
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
                known[v.number] = digest
                result.imported.append(v.number)
            elif known[v.number] == digest:
                result.duplicates.append(v.number)
            else:
                result.conflicts.append(v.number)
    receipts = ([{"number": n, "status": s} for s, numbers in
                 (("imported", result.imported), ("duplicate", result.duplicates),
                  ("conflict", result.conflicts)) for n in numbers])
    if receipt:  # back in the suite the bundle came in
        result.receipt = path.with_name(f"{me}-receipt-for-{manifest['bundle_id'][:8]}{SUFFIX}")
        write_bundle(result.receipt, kind="receipt", sender=me, recipient=manifest["from"],
                     rows=receipts, keys=keys, suite=SUITES[manifest["suite"]], ttl=ttl,
                     now=now, extra={"in_reply_to": manifest["bundle_id"]})
    with store.transaction() as tx:
        tx.set_state(f"bundle:{manifest['bundle_id']}", {
            "from": manifest["from"], "kind": "vouchers", "imported_at": now.isoformat(),
            "count": manifest["count"]})
        tx.append("exchange.imported", manifest["bundle_id"], {
            **_summary(manifest, path), "imported": len(result.imported),
            "duplicates": len(result.duplicates), "conflicts": result.conflicts[:100],
            "receipt": str(result.receipt) if result.receipt else None})
    return result


def _receipt(manifest: dict[str, Any], rows: list[dict[str, Any]], store: Store,
             path: Path) -> Imported:
    result = Imported(manifest)
    for row in rows:
        getattr(result, {"imported": "imported", "duplicate": "duplicates"}.get(
            row["status"], "conflicts")).append(row["number"])
    with store.transaction() as tx:
        tx.set_state(f"bundle:{manifest['bundle_id']}", {"from": manifest["from"],
                                                        "kind": "receipt"})
        tx.append("exchange.receipt", manifest.get("in_reply_to", ""), {
            "file": str(path), "from": manifest["from"], "imported": len(result.imported),
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


def handover(manifest: dict[str, Any], path: Path, lang: str) -> tuple[str, str]:
    """The handover record as Markdown and as a printable HTML page with signature lines."""
    w: dict[str, Any] = _WORDS[lang]
    rows = [(w["bundle"], path.name), (w["id"], manifest["bundle_id"]),
            (w["from"], manifest["from"]), (w["to"], manifest["to"]),
            (w["created"], manifest["created_at"][:19]),
            (w["expires"], manifest["expires_at"][:19]),
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
