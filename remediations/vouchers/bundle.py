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
import re
import shutil
import stat
import tarfile
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from vigil.errors import first_error
from vigil.files import write_atomically
from vigil.remediations.vouchers.suites import SUITES, CryptoError, Suite
from vigil.remediations.vouchers.voucher import Voucher, voucher_from

FORMAT = "vigil-exchange/1"
MEMBERS = ("manifest.json", "manifest.sig", "payload.enc")


class BundleRefused(Exception):
    """The bundle is not imported; `reason` says why in a word, the message in a sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


PARTY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_TTL = dt.timedelta(days=30)  # a disc by courier takes days, not months
_MEMBER_LIMITS = {"manifest.json": 64 * 1024, "manifest.sig": 4096}


class PartyNameError(ValueError):
    """A party name that would not be a safe file name."""


def check_party(name: str, what: str = "party") -> str:
    """Party names become file names (keys, bundles, inbox files): only [a-z0-9_-]."""
    if not isinstance(name, str) or not PARTY.fullmatch(name):
        raise PartyNameError(f"{what} {_shown(name)}: a party is 1 to 64 of a-z, 0-9, "
                             f"'-' and '_', starting with a letter or digit")
    return name


def _shown(value: object, limit: int = 80) -> str:
    """An untrusted value in a one-line message: quoted, escaped, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Keys:
    """A folder of PEM keys, `<party>.<sign|enc>.<key|pub>.pem`; names checked first."""

    folder: Path

    def private(self, party: str, use: str) -> Path:
        return self.folder / f"{check_party(party)}.{use}.key.pem"

    def public(self, party: str, use: str) -> Path:
        return self.folder / f"{check_party(party)}.{use}.pub.pem"

    def senders(self) -> dict[str, Path]:
        """The parties whose signing key was exchanged beforehand: a public key in this
        folder. A bundle's sender is looked up here, never made into a path."""
        suffix = ".sign.pub.pem"
        try:
            files = [p for p in self.folder.iterdir() if p.name.endswith(suffix)]
        except OSError:
            return {}
        return {p.name[:-len(suffix)]: p for p in files
                if PARTY.fullmatch(p.name[:-len(suffix)]) and p.is_file()}

    def generate(self, suite: Suite, party: str) -> None:
        """A party's signing and encryption key pairs; an existing key is never replaced
        (the others hold its public half)."""
        paths = [getattr(self, kind)(party, use) for use in ("sign", "enc")
                 for kind in ("private", "public")]
        if existing := [p for p in paths if p.exists()]:
            raise CryptoError(f"{existing[0]}: exists already; keys are never overwritten")
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".keygen-", dir=self.folder))
        try:  # all four files, or none
            suite.keygen(staging, party)
            for path in paths:
                (staging / path.name).replace(path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def require(self, needed: Iterable[tuple[str, str, str]]) -> None:
        """Check before anything is written that each (party, use, private|public) key is
        there; raise CryptoError naming the first one missing."""
        for party, use, kind in needed:
            path = self.private(party, use) if kind == "private" else self.public(party, use)
            if not path.is_file():
                raise CryptoError(f"{path}: no such key ({kind} {use} key of {party})")


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
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in zip(MEMBERS, (body, signature, sealed), strict=True):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o644
            tar.addfile(info, io.BytesIO(data))
    write_atomically(out, archive.getvalue())
    return manifest


_HEX64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_UUID = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                     r"[0-9a-f]{12}$")]
_PARTY = Annotated[str, Field(pattern=f"^{PARTY.pattern}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class PayloadInfo(_Strict):
    name: Literal["payload.enc"]
    plain_digest: _HEX64
    cipher_digest: _HEX64
    bytes: int = Field(ge=0)


class Manifest(_Strict):
    """Every field of a manifest, checked after its signature and before any is used."""

    format: Literal["vigil-exchange/1"]
    kind: Literal["vouchers", "receipt"]
    bundle_id: _UUID
    suite: Literal["sm", "intl"]
    sender: _PARTY = Field(alias="from")
    to: _PARTY
    created_at: AwareDatetime
    expires_at: AwareDatetime
    count: int = Field(ge=0, le=100_000_000)
    total_amount: str = Field(pattern=r"^-?[0-9]{1,16}\.[0-9]{2}$")
    payload: PayloadInfo
    nonce: str = Field(pattern=r"^[0-9a-f]{24}$")
    wrapped_key: str = Field(max_length=4096, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
    supplementary: bool | None = None
    in_reply_to: _UUID | None = None


class ReceiptRow(_Strict):
    number: str = Field(min_length=1, max_length=200)
    status: Literal["imported", "duplicate", "conflict"]


@dataclass
class Opened:
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]


def _read_parts(path: Path) -> dict[str, bytes]:
    """The three members of a bundle, from a regular file (a pipe would hang), each within
    its size limit."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise BundleRefused("unreadable", f"{path}: not a regular file")
        with tarfile.open(path, "r:") as tar:
            members = tar.getmembers()
            if sorted(m.name for m in members) != sorted(MEMBERS) or not all(
                    m.isfile() and m.size <= _MEMBER_LIMITS.get(m.name, m.size)
                    for m in members):
                raise BundleRefused("unreadable", f"{path}: truncated or not a bundle (has "
                                    f"{_shown(sorted(m.name for m in members), 120)})")
            return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                    for m in members}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleRefused("unreadable", f"{path}: truncated or not a bundle ({exc})") from None


def open_bundle(path: Path, *, me: str, keys: Keys, now: dt.datetime,
                seen: set[str], parties: Iterable[str] | None = None) -> Opened:
    """Verify everything and decrypt; raise BundleRefused with the first thing wrong.

    The sender must be a party whose signing key was exchanged beforehand (a public key in
    `keys`) and, given `parties` (the inventory's), one of those; nothing the manifest says
    is used before its signature verifies and its schema holds."""
    parts = _read_parts(path)
    try:
        raw = json.loads(parts["manifest.json"])
    except (ValueError, RecursionError) as exc:
        raise BundleRefused("unreadable", f"{path}: the manifest is damaged ({exc})") from None
    if not isinstance(raw, dict):
        raise BundleRefused("unreadable", f"{path}: the manifest is not a JSON object")
    sender, suite_name = raw.get("from"), raw.get("suite")
    trusted = keys.senders()
    allowed = set(trusted) & set(parties) if parties is not None else set(trusted)
    if not isinstance(sender, str) or sender not in allowed:
        raise BundleRefused("unknown-sender", f"{path}: sender {_shown(sender)} is not a "
                            f"party whose signing key is in {keys.folder}"
                            + (" and in the inventory" if parties is not None else ""))
    if not isinstance(suite_name, str) or suite_name not in SUITES:
        raise BundleRefused("invalid", f"{path}: unknown suite {_shown(suite_name)}")
    suite = SUITES[suite_name]
    try:
        genuine = suite.verify(trusted[sender], parts["manifest.json"], parts["manifest.sig"])
    except CryptoError as exc:
        raise BundleRefused("bad-signature", f"{path}: {exc}") from None
    if not genuine:
        raise BundleRefused("bad-signature", f"{path}: the manifest's signature does not "
                                             f"verify: altered, or not signed by {sender}")
    try:
        checked = Manifest.model_validate_json(parts["manifest.json"])
    except ValidationError as exc:
        raise BundleRefused("invalid", f"{path}: manifest {first_error(exc, 'manifest')}") from None
    if checked.to != me:
        raise BundleRefused("wrong-recipient", f"{path}: addressed to {checked.to}, not to {me}")
    if (checked.kind == "receipt") != (checked.in_reply_to is not None) or (
            checked.kind == "receipt" and checked.supplementary is not None):
        raise BundleRefused("invalid", f"{path}: a {checked.kind} bundle with "
                            f"{'no' if checked.in_reply_to is None else 'an'} in_reply_to")
    if not dt.timedelta(0) < checked.expires_at - checked.created_at <= MAX_TTL:
        raise BundleRefused("invalid", f"{path}: valid from {checked.created_at} until "
                            f"{checked.expires_at}: not within {MAX_TTL.days} days")
    if now > checked.expires_at:
        raise BundleRefused("expired", f"{path}: expired at {checked.expires_at.isoformat()}")
    manifest = checked.model_dump(by_alias=True, exclude_none=True, mode="json")
    manifest["created_at"], manifest["expires_at"] = raw["created_at"], raw["expires_at"]
    if checked.bundle_id in seen:
        raise BundleRefused("replayed", f"{path}: bundle {checked.bundle_id} was "
                                        f"imported before; nothing imported twice")
    sealed = parts["payload.enc"]
    if suite.digest(sealed) != checked.payload.cipher_digest:
        raise BundleRefused("tampered", f"{path}: the payload does not match the signed "
                                        f"manifest (altered on the way)")
    try:
        key = suite.unwrap(keys.private(me, "enc"), base64.b64decode(checked.wrapped_key))
        plain = suite.open(key, bytes.fromhex(checked.nonce), sealed,
                           checked.bundle_id.encode())
    except (CryptoError, ValueError) as exc:
        raise BundleRefused("undecryptable", f"{path}: {exc}") from None
    if suite.digest(plain) != checked.payload.plain_digest:
        raise BundleRefused("tampered", f"{path}: the decrypted vouchers do not match the "
                                        f"manifest's digest")
    try:
        rows = [json.loads(line) for line in plain.decode("utf-8").splitlines()]
        if not all(isinstance(r, dict) for r in rows):
            raise ValueError("a line is not a JSON object")
        total = sum((Decimal(str(r.get("amount", "0"))) for r in rows), Decimal("0"))
        if checked.kind == "receipt":
            for r in rows:
                ReceiptRow.model_validate(r)
    except (ValueError, RecursionError, ArithmeticError) as exc:
        raise BundleRefused("invalid", f"{path}: the signed vouchers are malformed "
                            f"({str(exc).splitlines()[0][:200]})") from None
    if not total.is_finite() or len(rows) != checked.count \
            or f"{total:.2f}" != checked.total_amount:
        raise BundleRefused("counts", f"{path}: {len(rows)} vouchers totalling {total:.2f}, "
                                      f"the manifest says {checked.count} totalling "
                                      f"{checked.total_amount}")
    return Opened(manifest, rows)


def check_rows(rows: list[dict[str, Any]]) -> list[Voucher]:
    """Each voucher parses and matches its own digest."""
    vouchers = []
    for row in rows:
        try:
            v = voucher_from(row)
        except ValueError as exc:
            raise BundleRefused("invalid", f"a signed voucher is malformed: {exc}") from None
        if v.content_digest() != row.get("digest"):
            raise BundleRefused("tampered", f"voucher {v.number}: content does not match "
                                            f"its digest")
        vouchers.append(v)
    return vouchers
