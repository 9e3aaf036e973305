"""Offline exchange bundles (P4.3.1(3), P4.3.7): SM2/SM3/SM4 against the standard's test
vectors and the openssl command line, round trips in both suites, and every kind of bad
bundle refused with nothing imported."""

from __future__ import annotations

import datetime as dt
import subprocess
import tarfile
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import VigilRunner
from vigil.remediations.vouchers.bundle import BundleRefused, Keys
from vigil.remediations.vouchers.offline import export, import_bundle
from vigil.remediations.vouchers.suites import SUITES, SmSuite
from vigil.remediations.vouchers.voucher import Voucher
from vigil.store import Store

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def vouchers(n: int) -> list[Voucher]:
    return [Voucher(f"V{i:06d}", "payment", dt.date(2026, 11, 27),
                    Decimal(f"{1000 + i}.{i % 100:02d}"), "62220001", f"6222{i:04d}",
                    signed=True, sent=True) for i in range(n)]


@pytest.fixture(params=["sm", "intl"])
def suite_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def keys(tmp_path: Path, suite_name: str) -> Keys:
    folder = tmp_path / "keys"
    folder.mkdir()
    for party in ("finance", "pboc", "bank-a"):
        SUITES[suite_name].keygen(folder, party)
    return Keys(folder)


def test_sm3_and_sm4_standard_test_vectors() -> None:
    sm = SmSuite()
    assert sm.digest(b"abc") == \
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm.digest(b"abcd" * 16) == \
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = bytes.fromhex("0123456789abcdeffedcba9876543210")  # GB/T 32907 example 1
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (enc.update(key) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"
    # SM4-GCM as the suite uses it: the tag catches one flipped bit
    sealed = sm.seal(key * 2, b"\0" * 12, b"voucher", b"aad")
    assert sm.open(key * 2, b"\0" * 12, sealed, b"aad") == b"voucher"
    with pytest.raises(Exception, match="does not decrypt"):
        sm.open(key * 2, b"\0" * 12, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"aad")


def test_sm3_and_sm2_agree_with_the_openssl_command_line(tmp_path: Path) -> None:
    sm = SmSuite()
    data = "凭证 V000001 金额 1000.00".encode()
    (tmp_path / "m").write_bytes(data)
    dgst = subprocess.run(["openssl", "dgst", "-sm3", "-r", str(tmp_path / "m")],
                          capture_output=True, text=True, check=True).stdout.split()[0]
    assert sm.digest(data) == dgst
    sm.keygen(tmp_path, "finance")
    (tmp_path / "sig").write_bytes(sm.sign(tmp_path / "finance.sign.key.pem", data))
    verified = subprocess.run(
        ["openssl", "dgst", "-sm3", "-verify", str(tmp_path / "finance.sign.pub.pem"),
         "-sigopt", "distid:1234567812345678", "-signature", str(tmp_path / "sig"),
         str(tmp_path / "m")], capture_output=True, text=True)
    assert "Verified OK" in verified.stdout
    signed = subprocess.run(  # and the other way: openssl signs, Vigil verifies
        ["openssl", "dgst", "-sm3", "-sign", str(tmp_path / "finance.sign.key.pem"),
         "-sigopt", "distid:1234567812345678", str(tmp_path / "m")],
        capture_output=True, check=True).stdout
    assert sm.verify(tmp_path / "finance.sign.pub.pem", data, signed)
    assert not sm.verify(tmp_path / "finance.sign.pub.pem", data + b"!", signed)


def _export(keys: Keys, suite_name: str, tmp_path: Path, n: int = 200,
            ttl: dt.timedelta = dt.timedelta(hours=72), store: Store | None = None) -> Path:
    path, manifest = export(vouchers(n), sender="finance", recipient="pboc", keys=keys,
                            suite=SUITES[suite_name], out_dir=tmp_path / "disc", ttl=ttl,
                            now=NOW, store=store)
    assert manifest["count"] == n
    return path


def test_round_trip_export_import_receipt(tmp_path: Path, keys: Keys, suite_name: str) -> None:
    store = Store(str(tmp_path / "s.db"))
    bundle = _export(keys, suite_name, tmp_path, store=store)
    md = bundle.with_name(f"{bundle.stem}.handover.zh.md").read_text()
    total = sum(v.amount for v in vouchers(200))
    assert "交接记录" in md and "| 凭证笔数 | 200 |" in md and f"{total:.2f}" in md
    assert "监交人（签字）" in bundle.with_name(f"{bundle.stem}.handover.zh.html").read_text()
    result = import_bundle(bundle, me="pboc", keys=keys, receipt=True,
                           inbox=tmp_path / "pboc-inbox", store=store, now=NOW)
    assert len(result.imported) == 200 and not result.conflicts
    lines = (tmp_path / "pboc-inbox/from-finance.jsonl").read_text().splitlines()
    assert len(lines) == 200 and '"amount": "1007.07"' in lines[7]
    assert result.receipt is not None
    back = import_bundle(result.receipt, me="finance", keys=keys, receipt=False,
                         inbox=tmp_path / "fin-inbox", store=store, now=NOW)
    assert len(back.imported) == 200
    kinds = [e.kind for e in store.events()]
    assert kinds == ["exchange.exported", "exchange.imported", "exchange.receipt"]


def _refused(bundle: Path, keys: Keys, tmp_path: Path, *, me: str = "pboc",
             now: dt.datetime = NOW, store: Store | None = None) -> str:
    store = store or Store(str(tmp_path / "s.db"))
    inbox = tmp_path / "inbox"
    before = inbox.exists() and sorted(inbox.iterdir())
    with pytest.raises(BundleRefused) as refused:
        import_bundle(bundle, me=me, keys=keys, receipt=False, inbox=inbox,
                      store=store, now=now)
    assert (inbox.exists() and sorted(inbox.iterdir())) == before, "nothing imported"
    assert store.events()[-1].kind == "exchange.refused"
    return refused.value.reason


def test_one_byte_changed_anywhere_is_refused(tmp_path: Path, keys: Keys,
                                              suite_name: str) -> None:
    bundle = _export(keys, suite_name, tmp_path, n=50)
    data = bundle.read_bytes()
    with tarfile.open(bundle) as tar:
        offsets = {m.name: m.offset_data for m in tar.getmembers()}
    reasons = set()
    for name, at in offsets.items():
        bad = tmp_path / f"bad-{name}.vgb"
        spot = at + 40
        bad.write_bytes(data[:spot] + bytes([data[spot] ^ 0x01]) + data[spot + 1:])
        reasons.add(_refused(bad, keys, tmp_path))
    assert reasons <= {"bad-signature", "tampered", "unreadable"} and "tampered" in reasons


def test_truncated_replayed_wrong_recipient_and_expired_are_refused(
        tmp_path: Path, keys: Keys, suite_name: str) -> None:
    bundle = _export(keys, suite_name, tmp_path, n=20, ttl=dt.timedelta(hours=1))
    cut = tmp_path / "cut.vgb"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    assert _refused(cut, keys, tmp_path) == "unreadable"
    assert _refused(bundle, keys, tmp_path, me="bank-a") == "wrong-recipient"
    assert _refused(bundle, keys, tmp_path, now=NOW + dt.timedelta(hours=2)) == "expired"
    store = Store(str(tmp_path / "replay.db"))
    import_bundle(bundle, me="pboc", keys=keys, receipt=False,
                  inbox=tmp_path / "inbox", store=store, now=NOW)
    assert _refused(bundle, keys, tmp_path, store=store) == "replayed"


def test_a_voucher_already_there_is_not_imported_twice_and_a_changed_one_is_a_conflict(
        tmp_path: Path, keys: Keys, suite_name: str) -> None:
    store = Store(str(tmp_path / "s.db"))
    first = _export(keys, suite_name, tmp_path, n=10)
    import_bundle(first, me="pboc", keys=keys, receipt=False,
                  inbox=tmp_path / "inbox", store=store, now=NOW)
    changed = vouchers(12)
    changed[3] = Voucher("V000003", "payment", dt.date(2026, 11, 27), Decimal("9.99"),
                         "62220001", "62220003")
    second, _ = export(changed, sender="finance", recipient="pboc", keys=keys,
                       suite=SUITES[suite_name], out_dir=tmp_path / "disc2",
                       ttl=dt.timedelta(hours=3), now=NOW)
    result = import_bundle(second, me="pboc", keys=keys, receipt=False,
                           inbox=tmp_path / "inbox", store=store, now=NOW)
    assert result.imported == ["V000010", "V000011"]
    assert result.conflicts == ["V000003"] and len(result.duplicates) == 9


def write_export(path: Path, n: int) -> Path:
    """A voucher library's export as JSON lines, for --source."""
    import json

    path.write_text("".join(json.dumps({
        "number": v.number, "type": v.type, "business_date": v.business_date.isoformat(),
        "amount": str(v.amount), "payer_account": v.payer_account,
        "payee_account": v.payee_account}) + "\n" for v in vouchers(n)))
    return path


def test_the_commands_export_import_and_refuse(tmp_path: Path, vigil: VigilRunner) -> None:
    import json

    source = write_export(tmp_path / "finance.jsonl", 30)
    keys = tmp_path / "keys"
    for party in ("finance", "pboc"):
        assert vigil("exchange", "keygen", "--party", party, "--keys", str(keys)).code == 0
    run = vigil("exchange", "export", "--from", "finance", "--to", "pboc", "--source",
                str(source), "--keys", str(keys), "--out", str(tmp_path / "disc"), "--json")
    assert run.code == 0, run.err + run.out
    bundle = Path(json.loads(run.out)["bundle"])
    run = vigil("exchange", "import", str(bundle), "--as", "pboc", "--keys", str(keys),
                "--inbox", str(tmp_path / "inbox"), "--json", "--lang", "en")
    assert run.code == 0, run.err + run.out
    assert json.loads(run.out)["imported"] == 30
    again = vigil("exchange", "import", str(bundle), "--as", "pboc", "--keys", str(keys),
                  "--inbox", str(tmp_path / "inbox"), "--lang", "en")
    assert again.code == 4 and "refused (replayed)" in again.out


def test_supplementary_vouchers_imported_twice_are_never_duplicated(
        tmp_path: Path, keys: Keys, suite_name: str) -> None:
    store = Store(str(tmp_path / "s.db"))
    inbox = tmp_path / "inbox"
    for attempt in range(2):  # two bundles of the same supplementary vouchers
        path, manifest = export(vouchers(5), sender="finance", recipient="pboc", keys=keys,
                                suite=SUITES[suite_name], out_dir=tmp_path / f"d{attempt}",
                                ttl=dt.timedelta(hours=3), now=NOW, supplementary=True)
        assert manifest["supplementary"] is True
        result = import_bundle(path, me="pboc", keys=keys, receipt=False,
                               inbox=inbox, store=store, now=NOW)
        assert (len(result.imported), len(result.duplicates)) == ((5, 0) if attempt == 0
                                                                  else (0, 5))
    lines = (inbox / "from-finance.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all('"mark": "supplementary"' in line for line in lines)


def test_an_export_refused_halfway_leaves_no_bundle_folder_or_record(
        tmp_path: Path, vigil: VigilRunner) -> None:
    source = write_export(tmp_path / "finance.jsonl", 5)
    lines = source.read_text().splitlines()
    source.write_text("\n".join([*lines, lines[0]]) + "\n")  # V000000 again, out of order
    keys = tmp_path / "keys"
    for party in ("finance", "pboc"):
        assert vigil("exchange", "keygen", "--party", party, "--keys", str(keys)).code == 0
    run = vigil("exchange", "export", "--from", "finance", "--to", "pboc", "--source",
                str(source), "--keys", str(keys), "--out", str(tmp_path / "disc"))
    assert run.code == 3 and "V000000 at record 6 is out of order" in run.err
    assert not (tmp_path / "disc").exists()
    assert vigil("events", "list", "--json").out.strip() == "[]"
