"""Forged exchange bundles and receipts (P4.3.7): every way the manifest lets an attacker
name a sender, recipient, kind, suite or path is refused before anything is imported,
and the refusal leaves the inbox and the store's records as they were."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VigilRunner
from tests.unit.test_exchange import NOW, vouchers, write_export
from vigil.remediations.vouchers.bundle import MEMBERS, BundleRefused, Keys, write_bundle
from vigil.remediations.vouchers.offline import export, import_bundle
from vigil.remediations.vouchers.suites import SUITES
from vigil.store import Store

DROP = object()  # a manifest field to remove


@pytest.fixture(params=["sm", "intl"])
def suite_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(tmp_path: Path, suite_name: str) -> dict[str, Any]:
    """The parties' exchanged keys, and mallory's own key pair outside that folder."""
    keys = Keys(tmp_path / "keys")
    for party in ("finance", "pboc", "bank-a"):
        keys.generate(SUITES[suite_name], party)
    evil = Keys(tmp_path / "x")
    evil.generate(SUITES[suite_name], "mallory")
    shutil.copy(keys.public("pboc", "enc"), evil.public("pboc", "enc"))
    shutil.copy(keys.public("finance", "enc"), evil.public("finance", "enc"))
    store = Store(str(tmp_path / "s.db"))
    bundle, _ = export(vouchers(5), sender="finance", recipient="pboc", keys=keys,
                       suite=SUITES[suite_name], out_dir=tmp_path / "disc",
                       ttl=dt.timedelta(hours=72), now=NOW, store=store)
    return {"keys": keys, "evil": evil, "store": store, "bundle": bundle,
            "suite": SUITES[suite_name], "tmp": tmp_path}


def forge(w: dict[str, Any], signer: Path, template: Path | None = None,
          **changes: Any) -> Path:
    """The template bundle with manifest fields changed (`from_` for `from`) and signed
    again with `signer`'s key; the payload is left as it was."""
    template = template or w["bundle"]
    with tarfile.open(template) as tar:
        parts = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    manifest = json.loads(parts["manifest.json"])
    for name, value in changes.items():
        name = name.rstrip("_")
        if value is DROP:
            manifest.pop(name, None)
        else:
            manifest[name] = value
    body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    parts["manifest.json"], parts["manifest.sig"] = body, w["suite"].sign(signer, body)
    out = w["tmp"] / f"forged-{uuid.uuid4().hex[:8]}.vgb"
    with tarfile.open(out, "w") as tar:
        for name in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size = len(parts[name])
            tar.addfile(info, io.BytesIO(parts[name]))
    return out


def refused(w: dict[str, Any], bundle: Path, *, me: str = "pboc",
            parties: list[str] | None = None) -> str:
    """Import must refuse; the inbox stays absent and only the refusal is recorded."""
    store: Store = w["store"]
    inbox = w["tmp"] / "inbox"
    states = store.states("")
    events = [e.kind for e in store.events()]
    with pytest.raises(BundleRefused) as exc:
        import_bundle(bundle, me=me, keys=w["keys"], receipt=True, inbox=inbox, store=store,
                      now=NOW, parties=parties)
    assert not inbox.exists(), "nothing imported"
    assert store.states("") == states, "no record changed"
    assert [e.kind for e in store.events()] == [*events, "exchange.refused"]
    assert "\n" not in str(exc.value)
    assert not list(w["tmp"].glob("**/*receipt*")), "no receipt written"
    return exc.value.reason


def test_a_sender_named_by_a_path_is_unknown_even_with_a_key_there(
        world: dict[str, Any]) -> None:
    mallory = world["evil"].private("mallory", "sign")
    absolute = str(world["tmp"] / "x" / "mallory")  # /…/x/mallory.sign.pub.pem exists
    assert Path(absolute + ".sign.pub.pem").exists()
    for sender in (absolute, "../x/mallory", "mallory", "./finance", "finance/", "",
                   ["finance"], None, 7):
        assert refused(world, forge(world, mallory, from_=sender)) == "unknown-sender"


def test_a_known_sender_signed_by_another_key_is_a_bad_signature(
        world: dict[str, Any]) -> None:
    mallory = world["evil"].private("mallory", "sign")
    assert refused(world, forge(world, mallory)) == "bad-signature"
    pboc = world["keys"].private("pboc", "sign")  # a real party, not the one named
    assert refused(world, forge(world, pboc)) == "bad-signature"


def test_a_sender_outside_the_inventory_is_unknown_though_its_key_is_there(
        world: dict[str, Any]) -> None:
    bank = world["keys"].private("bank-a", "sign")
    forged = forge(world, bank, from_="bank-a")
    assert refused(world, forged, parties=["finance", "pboc"]) == "unknown-sender"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"to": "../pboc"}, "invalid"),
    ({"to": "bank-a"}, "wrong-recipient"),
    ({"kind": "bogus"}, "invalid"),
    ({"kind": DROP}, "invalid"),
    ({"kind": ["vouchers"]}, "invalid"),
    ({"suite": "rot13"}, "invalid"),
    ({"suite": {"sm": 1}}, "invalid"),
    ({"format": "vigil-exchange/2"}, "invalid"),
    ({"bundle_id": "../../../tmp/pwned"}, "invalid"),
    ({"count": "5"}, "invalid"),
    ({"count": -1}, "invalid"),
    ({"total_amount": "NaN"}, "invalid"),
    ({"expires_at": "2027-11-28T09:00:00+00:00"}, "invalid"),
    ({"expires_at": "2026-11-29T09:00:00"}, "invalid"),
    ({"payload": {"name": "../x"}}, "invalid"),
    ({"nonce": DROP}, "invalid"),
    ({"in_reply_to": str(uuid.uuid4())}, "invalid"),
    ({"evil": True}, "invalid"),
])
def test_a_genuinely_signed_manifest_with_bad_fields_is_refused(
        world: dict[str, Any], changes: dict[str, Any], reason: str) -> None:
    """As from an insider with finance's own key: the schema still holds every field."""
    finance = world["keys"].private("finance", "sign")
    assert refused(world, forge(world, finance, **changes)) == reason


def test_the_other_suite_named_in_a_signed_manifest_is_a_bad_signature(
        world: dict[str, Any]) -> None:
    other = "intl" if world["suite"].name == "sm" else "sm"
    finance = world["keys"].private("finance", "sign")
    assert refused(world, forge(world, finance, suite=other)) == "bad-signature"


def _receipt(w: dict[str, Any], *, sender: str, keys: Keys, replying_to: str,
             count: int = 5) -> Path:
    out = w["tmp"] / f"r-{uuid.uuid4().hex[:8]}.vgb"
    write_bundle(out, kind="receipt", sender=sender, recipient="finance",
                 rows=[{"number": f"V{i:06d}", "status": "imported"} for i in range(count)],
                 keys=keys, suite=w["suite"], ttl=dt.timedelta(days=3), now=NOW,
                 extra={"in_reply_to": replying_to})
    return out


def test_forged_receipts_are_refused(world: dict[str, Any]) -> None:
    keys, evil = world["keys"], world["evil"]
    with tarfile.open(world["bundle"]) as tar:
        sent = json.loads(tar.extractfile("manifest.json").read())["bundle_id"]  # type: ignore[union-attr]
    mallory = _receipt(world, sender="mallory", keys=evil, replying_to=sent)
    path_named = forge(world, evil.private("mallory", "sign"), template=mallory,
                       from_=str(world["tmp"] / "x" / "mallory"))
    assert refused(world, mallory, me="finance") == "unknown-sender"
    assert refused(world, path_named, me="finance") == "unknown-sender"
    never_sent = _receipt(world, sender="pboc", keys=keys, replying_to=str(uuid.uuid4()))
    assert refused(world, never_sent, me="finance") == "unknown-bundle"
    not_its = _receipt(world, sender="bank-a", keys=keys, replying_to=sent)
    assert refused(world, not_its, me="finance") == "unknown-bundle"
    short = _receipt(world, sender="pboc", keys=keys, replying_to=sent, count=4)
    assert refused(world, short, me="finance") == "counts"
    bogus = forge(world, keys.private("pboc", "sign"), template=short, in_reply_to=DROP)
    assert refused(world, bogus, me="finance") == "invalid"


def test_the_genuine_receipt_counts_once(world: dict[str, Any]) -> None:
    with tarfile.open(world["bundle"]) as tar:
        sent = json.loads(tar.extractfile("manifest.json").read())["bundle_id"]  # type: ignore[union-attr]
    first = _receipt(world, sender="pboc", keys=world["keys"], replying_to=sent)
    result = import_bundle(first, me="finance", keys=world["keys"], receipt=False,
                           inbox=world["tmp"] / "fin", store=world["store"], now=NOW)
    assert len(result.imported) == 5
    second = _receipt(world, sender="pboc", keys=world["keys"], replying_to=sent)
    assert refused(world, second, me="finance") == "replayed"


def test_the_commands_refuse_forgeries_and_path_names_and_write_nothing(
        tmp_path: Path, vigil: VigilRunner, store_path: Path) -> None:
    keys, outside = tmp_path / "k", tmp_path / "x"
    run = vigil("exchange", "keygen", "--party", str(outside / "mallory"), "--keys", str(keys))
    assert run.code == 3 and "--party" in run.err and "Traceback" not in run.err
    assert not outside.exists() and not keys.exists()
    for party in ("finance", "pboc"):
        assert vigil("exchange", "keygen", "--party", party, "--keys", str(keys)).code == 0
    again = vigil("exchange", "keygen", "--party", "pboc", "--keys", str(keys))
    assert again.code == 3 and "never overwritten" in again.err
    source = write_export(tmp_path / "f.jsonl", 3)
    disc = tmp_path / "disc"
    for bad in (["--from", str(outside / "mallory")], ["--to", "../pboc"],
                ["--ttl-hours", "-1"], ["--ttl-hours", "nan"], ["--ttl-hours", "1e20"]):
        args = {"--from": "finance", "--to": "pboc", "--ttl-hours": "72"}
        args[bad[0]] = bad[1]
        run = vigil("exchange", "export", *[x for kv in args.items() for x in kv],
                    "--source", str(source), "--keys", str(keys), "--out", str(disc))
        assert run.code == 3 and bad[0] in run.err and "Traceback" not in run.err, run.err
        assert not disc.exists() and not outside.exists()
    run = vigil("exchange", "export", "--from", "finance", "--to", "pboc", "--source",
                str(source), "--keys", str(keys), "--out", str(disc), "--json")
    assert run.code == 0, run.err
    bundle = Path(json.loads(run.out)["bundle"])
    Keys(outside).generate(SUITES["sm"], "mallory")
    w = {"suite": SUITES["sm"], "tmp": tmp_path}
    forged = forge(w, Keys(outside).private("mallory", "sign"), template=bundle,
                   from_=str(outside / "mallory"))
    events = vigil("events", "list", "--json").out
    run = vigil("exchange", "import", str(forged), "--as", "pboc", "--keys", str(keys),
                "--inbox", str(tmp_path / "inbox"), "--lang", "en")
    assert run.code == 4 and "refused (unknown-sender)" in run.out, run.out + run.err
    assert not (tmp_path / "inbox").exists()
    after = json.loads(vigil("events", "list", "--json").out)
    assert after[:-1] == json.loads(events) and after[-1]["kind"] == "exchange.refused"
    run = vigil("exchange", "import", str(bundle), "--as", "../pboc", "--keys", str(keys),
                "--inbox", str(tmp_path / "inbox"))
    assert run.code == 3 and "--as" in run.err and not (tmp_path / "inbox").exists()


def test_a_missing_key_for_the_receipt_is_found_before_anything_is_imported(
        world: dict[str, Any]) -> None:
    world["keys"].public("finance", "enc").unlink()
    store: Store = world["store"]
    before = store.events()
    from vigil.remediations.vouchers.suites import CryptoError

    with pytest.raises(CryptoError, match=r"finance\.enc\.pub\.pem"):
        import_bundle(world["bundle"], me="pboc", keys=world["keys"], receipt=True,
                      inbox=world["tmp"] / "inbox", store=store, now=NOW)
    assert not (world["tmp"] / "inbox").exists() and store.events() == before
    assert not list(world["tmp"].glob("disc/*receipt*"))
