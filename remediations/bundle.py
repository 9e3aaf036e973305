"""Offline exchange bundles: vouchers on a disc, by courier, when MQ or the network is
down at level II (P4.3.1(3), P4.3.7).

A bundle is one tar file: `manifest.json` (who to whom, when, until when, counts, amount
totals and digests), `manifest.sig` (the sender's signature over the manifest) and
`payload.enc` (the vouchers as JSON lines, encrypted to the recipient: a fresh content key
wrapped with the recipient's public key, AEAD with the bundle id as associated data).
Import checks everything before it imports anything, and refuses with one clear reason.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from remediations.suites import SUITES, CryptoError, Suite
from remediations.vouchers import Voucher, voucher_from

FORMAT = "vigil-exchange/1"
MEMBERS = ("manifest.json", "manifest.sig", "payload.enc")


class BundleRefused(Exception):
    """The bundle is not imported; `reason` says why in a word, the message in a sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Keys:
    folder: Path

    def private(self, party: str, use: str) -> Path:
        return self.folder / f"{party}.{use}.key.pem"

    def public(self, party: str, use: str) -> Path:
        return self.folder / f"{party}.{use}.pub.pem"


def voucher_line(v: Voucher) -> dict[str, Any]:
    return {"number": v.number, "type": v.type, "business_date": v.business_date.isoformat(),
            "amount": f"{v.amount:.2f}", "payer_account": v.payer_account,
            "payee_account": v.payee_account, "signed": v.signed, "sent": v.sent,
            "received": v.received, "receipt_returned": v.receipt_returned,
            "digest": v.content_digest()}


def _payload(rows: Iterable[dict[str, Any]]) -> tuple[bytes, int, Decimal]:
    out, count, total = io.StringIO(), 0, Decimal("0")
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
        total += Decimal(str(row.get("amount", "0")))
    return out.getvalue().encode("utf-8"), count, total


def write_bundle(out: Path, *, kind: str, sender: str, recipient: str, rows: Iterable[dict],
                 keys: Keys, suite: Suite, ttl: dt.timedelta, now: dt.datetime,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    plain, count, total = _payload(rows)
    bundle_id = str(uuid.uuid4())
    content_key, nonce = os.urandom(32), os.urandom(12)
    sealed = suite.seal(content_key, nonce, plain, bundle_id.encode())
    manifest = {
        "format": FORMAT, "kind": kind, "bundle_id": bundle_id, "suite": suite.name,
        "from": sender, "to": recipient, "created_at": now.isoformat(),
        "expires_at": (now + ttl).isoformat(), "count": count, "total_amount": f"{total:.2f}",
        "payload": {"name": "payload.enc", "plain_digest": suite.digest(plain),
                    "cipher_digest": suite.digest(sealed), "bytes": len(sealed)},
        "nonce": nonce.hex(),
        "wrapped_key": base64.b64encode(
            suite.wrap(keys.public(recipient, "enc"), content_key)).decode(),
        **(extra or {})}
    body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    signature = suite.sign(keys.private(sender, "sign"), body)
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w") as tar:
        for name, data in zip(MEMBERS, (body, signature, sealed), strict=True):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)  # a bundle is whole or absent
    return manifest


@dataclass
class Opened:
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]


def open_bundle(path: Path, *, me: str, keys: Keys, now: dt.datetime,
                seen: set[str]) -> Opened:
    """Verify everything and decrypt; raise BundleRefused with the first thing wrong."""
    try:
        with tarfile.open(path, "r:") as tar:
            parts = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                     for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleRefused("unreadable", f"{path}: truncated or not a bundle ({exc})") from None
    if set(parts) != set(MEMBERS):
        raise BundleRefused("unreadable", f"{path}: truncated or not a bundle (has "
                                          f"{', '.join(sorted(parts)) or 'nothing'})")
    try:
        manifest = json.loads(parts["manifest.json"])
        suite = SUITES[manifest["suite"]]
        sender, recipient = manifest["from"], manifest["to"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleRefused("unreadable", f"{path}: the manifest is damaged ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BundleRefused("unreadable", f"{path}: format {manifest.get('format')!r}")
    if recipient != me:
        raise BundleRefused("wrong-recipient",
                            f"{path}: addressed to {recipient}, not to {me}")
    if not keys.public(sender, "sign").exists():
        raise BundleRefused("unknown-sender", f"{path}: no signing key of {sender} in "
                                              f"{keys.folder}")
    if not suite.verify(keys.public(sender, "sign"), parts["manifest.json"],
                        parts["manifest.sig"]):
        raise BundleRefused("bad-signature", f"{path}: the manifest's signature does not "
                                             f"verify: altered, or not signed by {sender}")
    if now > dt.datetime.fromisoformat(manifest["expires_at"]):
        raise BundleRefused("expired", f"{path}: expired at {manifest['expires_at']}")
    if manifest["bundle_id"] in seen:
        raise BundleRefused("replayed", f"{path}: bundle {manifest['bundle_id']} was "
                                        f"imported before; nothing imported twice")
    sealed = parts["payload.enc"]
    if suite.digest(sealed) != manifest["payload"]["cipher_digest"]:
        raise BundleRefused("tampered", f"{path}: the payload does not match the signed "
                                        f"manifest (altered on the way)")
    try:
        key = suite.unwrap(keys.private(me, "enc"), base64.b64decode(manifest["wrapped_key"]))
        plain = suite.open(key, bytes.fromhex(manifest["nonce"]), sealed,
                           manifest["bundle_id"].encode())
    except CryptoError as exc:
        raise BundleRefused("undecryptable", f"{path}: {exc}") from None
    if suite.digest(plain) != manifest["payload"]["plain_digest"]:
        raise BundleRefused("tampered", f"{path}: the decrypted vouchers do not match the "
                                        f"manifest's digest")
    rows = [json.loads(line) for line in plain.decode("utf-8").splitlines()]
    total = sum((Decimal(str(r.get("amount", "0"))) for r in rows), Decimal("0"))
    if len(rows) != manifest["count"] or f"{total:.2f}" != manifest["total_amount"]:
        raise BundleRefused("counts", f"{path}: {len(rows)} vouchers totalling {total:.2f}, "
                                      f"the manifest says {manifest['count']} totalling "
                                      f"{manifest['total_amount']}")
    return Opened(manifest, rows)


def check_rows(rows: list[dict[str, Any]]) -> list[Voucher]:
    """Each voucher parses and matches its own digest."""
    vouchers = []
    for row in rows:
        v = voucher_from(row)
        if v.content_digest() != row.get("digest"):
            raise BundleRefused("tampered", f"voucher {v.number}: content does not match "
                                            f"its digest")
        vouchers.append(v)
    return vouchers
