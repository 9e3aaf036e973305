"""Reconciliation against the lab's three real voucher databases with injected faults."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from tests.conftest import VigilRunner
from vigil.lab import vouchers

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_up")]
DAY = dt.date(2026, 11, 27)


def numbers(path: str) -> set[str]:
    with open(path, encoding="utf-8") as fh:
        return {row["number"] for row in csv.DictReader(fh)}


def test_injected_discrepancies_come_back_exactly(vigil: VigilRunner, tmp_path: Path) -> None:
    expected = vouchers.generate(500, DAY, seed=7, missing=3, extra=2, altered=2,
                                 not_received=2, no_receipt=2)
    run = vigil("reconcile", "--all", "--inventory", "inventory/lab", "--date", DAY.isoformat(),
                "--out", str(tmp_path), "--json")
    assert run.code == 1, run.err  # not consistent
    reports = {r["b"]: r for r in json.loads(run.out)}
    assert set(reports) == {"pboc", "bank-a"}
    for party, report in reports.items():
        assert report["compared"] == 502
        assert report["counts"]["only_in_a"] == 3 and report["counts"]["only_in_b"] == 2
        assert numbers(report["files"][f"resend finance->{party}"]) == expected.resend_to[party]
        assert numbers(report["files"][f"resend {party}->finance"]) == \
            expected.resend_from[party]
        assert {s["number"] for s in report["samples"]["differs"]} == expected.differs[party]


def test_consistent_libraries_and_an_export_file(vigil: VigilRunner, tmp_path: Path) -> None:
    vouchers.generate(300, DAY, seed=3)
    run = vigil("reconcile", "finance", "pboc", "--inventory", "inventory/lab", "--date",
                DAY.isoformat(), "--out", str(tmp_path), "--lang", "en")
    assert run.code == 0, run.err + run.out
    assert "consistent" in run.out and "300 vouchers" in run.out
    import psycopg

    export = tmp_path / "bank-a.csv"
    with psycopg.connect(vouchers.dsn("bank-a")) as conn, \
            conn.cursor().copy("COPY (SELECT no AS number, kind AS type, day AS business_date, "
                               "amt AS amount, payer AS payer_account, payee AS payee_account, "
                               "signed, sent, received, receipt AS receipt_returned FROM vouchers"
                               " ORDER BY no) TO STDOUT WITH CSV HEADER") as copy:
        export.write_bytes(b"".join(bytes(chunk) for chunk in copy))
    run = vigil("reconcile", "finance", str(export), "--inventory", "inventory/lab",
                "--date", DAY.isoformat(), "--out", str(tmp_path / "f"))
    assert run.code == 0, run.err + run.out
    assert "一致" in run.out


def test_missing_database_is_a_clear_error(vigil: VigilRunner, tmp_path: Path) -> None:
    run = vigil("reconcile", "finance", "nobody", "--inventory", "inventory/lab",
                "--out", str(tmp_path))
    assert run.code == 3 and "no voucher library for 'nobody'" in run.err
    assert "Traceback" not in run.err


def test_supplementary_plan_leaves_out_what_is_held_and_marks_once(
        vigil: VigilRunner, tmp_path: Path) -> None:
    expected = vouchers.generate(300, DAY, seed=11, missing=4, altered=1, not_received=2,
                                 parties=("pboc",))
    args = ["supplementary", "plan", "--outage-start", f"{DAY}T00:00", "--outage-end",
            f"{DAY}T23:59", "--party", "pboc", "--inventory", "inventory/lab", "--json"]
    first = vigil(*args, "--out", str(tmp_path / "1"))
    assert first.code == 1, first.err  # a conflict needs a person
    (plan,) = json.loads(first.out)
    missing = expected.missing["pboc"]
    assert set(plan["supplementary"]) == missing and len(missing) == 4
    assert plan["already_held"] == 300 - 4 - 1  # never sent twice: it would be paid twice
    assert [c[0] for c in plan["conflicts"]] == sorted(expected.differs["pboc"])
    with open(plan["file"], encoding="utf-8") as fh:
        assert {row["number"] for row in csv.DictReader(fh)} == missing

    again = json.loads(vigil(*args, "--out", str(tmp_path / "2")).out)[0]
    assert again["supplementary"] == [] and again["already_marked"] == 4
    events = json.loads(vigil("events", "list", "--kind", "voucher.supplementary",
                              "--json").out)
    assert sorted(e["subject"] for e in events) == sorted(missing)


def test_verify_after_recovery_checks_integrity_validity_and_consistency(
        vigil: VigilRunner, tmp_path: Path) -> None:
    vouchers.generate(200, DAY, seed=5)
    run = vigil("reconcile", "--verify", "--incident", "ca-seal.ca_seal.drill",
                "--inventory", "inventory/lab", "--date", DAY.isoformat(),
                "--out", str(tmp_path), "--json")
    assert run.code == 0, run.err + run.out
    verdict = json.loads(run.out)["verification"]
    assert verdict["integrity"] and verdict["validity"] and verdict["consistency"]
    import psycopg

    with psycopg.connect(vouchers.dsn("pboc"), autocommit=True) as conn:
        conn.execute("UPDATE pz SET qz = false WHERE pzbh = (SELECT min(pzbh) FROM pz "
                     "WHERE fs OR js)")
    run = vigil("reconcile", "--verify", "--incident", "ca-seal.ca_seal.drill",
                "--inventory", "inventory/lab", "--date", DAY.isoformat(),
                "--out", str(tmp_path / "2"), "--lang", "en")
    assert run.code == 1
    assert "validity: FAILED" in run.out and "integrity: ok" in run.out
    events = json.loads(vigil("events", "list", "--kind", "reconcile.verified", "--json").out)
    assert [e["data"]["validity"] for e in events] == [True, False]
    assert events[-1]["subject"] == "ca-seal.ca_seal.drill"
    assert events[-1]["data"]["unsigned"] == {"pboc": 1}


def test_an_exchange_bundle_from_the_real_finance_library(vigil: VigilRunner,
                                                          tmp_path: Path) -> None:
    vouchers.generate(400, DAY, seed=11)  # consistent: finance holds all 400
    keys = tmp_path / "keys"
    for party in ("finance", "pboc"):
        assert vigil("exchange", "keygen", "--party", party, "--keys", str(keys)).code == 0
    run = vigil("exchange", "export", "--from", "finance", "--to", "pboc", "--date",
                DAY.isoformat(), "--keys", str(keys), "--out", str(tmp_path / "disc"),
                "--inventory", "inventory/lab", "--json")
    assert run.code == 0, run.err + run.out
    manifest = json.loads(run.out)
    assert manifest["count"] == 400 and manifest["suite"] == "sm"
    run = vigil("exchange", "import", manifest["bundle"], "--as", "pboc", "--keys", str(keys),
                "--inbox", str(tmp_path / "inbox"), "--json")
    assert run.code == 0, run.err + run.out
    assert json.loads(run.out)["imported"] == 400


ODD = ["V1", "V2\\tab", "V3", "V4"]  # a backslash in a number survives both ways
PAYEES = ["plain", "tab\there", "back\\slash", "line\nbreak 收款人"]


def test_copy_lines_and_careful_lines_agree(tmp_path: Path) -> None:
    """A vendor's native columns stream through COPY; text flags and a timestamp for the
    date go the careful way. Both must give the same bytes, escapes and all."""
    import psycopg

    from vigil.remediations.vouchers.reconcile import reconcile
    from vigil.remediations.vouchers.sources import SourceError, lines_from_sql

    dsn = vouchers.dsn("finance")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS odd_native, odd_vendor")
        conn.execute("CREATE TABLE odd_native (number text, type varchar(20), business_date "
                     "date, amount numeric(18,3), payer_account char(6), payee_account text, "
                     "signed boolean, received boolean)")
        conn.execute("CREATE TABLE odd_vendor (number text, type text, business_date "
                     "timestamp, amount text, payer_account char(6), payee_account text, "
                     "signed text, received text)")
        for i, (number, payee) in enumerate(zip(ODD, PAYEES, strict=True)):
            row = (number, "直接支付", DAY, f"{i}.125", "622", payee, True, i != 2)
            conn.execute("INSERT INTO odd_native VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", row)
            conn.execute("INSERT INTO odd_vendor VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                         (*row[:6], "Y", "yes" if i != 2 else "N"))
    query = "SELECT * FROM {} WHERE business_date >= %(since)s ORDER BY number"
    native = list(lines_from_sql("native", dsn, query.format("odd_native"), {"since": DAY}))
    vendor = list(lines_from_sql("vendor", dsn, query.format("odd_vendor"), {"since": DAY}))
    assert native == vendor and len(native) == 4
    assert native[1].startswith(b"V2\\\\tab\t") and b"tab\\there" in native[1]
    assert b"\t0.13\t" in native[0]  # halves round away from zero, as round() does
    report = reconcile("native", iter(native), "vendor", iter(vendor), tmp_path)
    assert report.consistent and report.compared == 4
    assert not report.unsigned

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE odd_native SET business_date = NULL WHERE number = 'V3'")
    with pytest.raises(SourceError, match="native: row 3: business_date is NULL"):
        list(lines_from_sql("native", dsn, query.format("odd_native") .replace(
            "WHERE business_date >= %(since)s", "WHERE %(since)s IS NOT NULL"), {"since": DAY}))
