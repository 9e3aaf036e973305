"""Reconciliation logic: exact discrepancies and resend lists, and a property test."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.remediations.vouchers.lines import line_of, voucher_of
from vigil.remediations.vouchers.reconcile import reconcile
from vigil.remediations.vouchers.sources import SourceError, from_file, ordered
from vigil.remediations.vouchers.voucher import Voucher

DAY = dt.date(2026, 11, 27)


def v(n: int, amount: str = "100.00", **state: bool) -> Voucher:
    return Voucher(f"V{n:07d}", "direct", DAY, Decimal(amount), "622-FIN", f"622-{n}",
                   **{"signed": True, "sent": True, "received": True,
                      "receipt_returned": True, **state})


def records(vouchers: list[Voucher]) -> Iterator[bytes]:
    return map(line_of, vouchers)


def resend(path: str) -> list[tuple[str, str, str]]:
    with open(path, encoding="utf-8") as fh:
        return [(r["number"], r["what"], r["reason"]) for r in csv.DictReader(fh)]


def test_every_kind_of_discrepancy_lands_in_the_right_list(tmp_path: Path) -> None:
    finance = [v(1), v(2), v(3, "250.00"), v(4), v(5), v(7)]
    pboc = [v(1), v(3, "205.00"), v(4, received=False), v(5, receipt_returned=False), v(6)]
    report = reconcile("finance", records(finance), "pboc", records(pboc), tmp_path)
    assert not report.consistent
    assert {k: n for k, n in report.counts.items() if n} == {
        "only_in_a": 2, "only_in_b": 1, "differs": 1, "not_received_by_b": 1,
        "receipt_missing_from_b": 1}
    assert resend(report.files["resend finance->pboc"]) == [
        ("V0000002", "voucher", "only_in_a"), ("V0000004", "voucher", "not_received_by_b"),
        ("V0000007", "voucher", "only_in_a")]
    assert resend(report.files["resend pboc->finance"]) == [
        ("V0000005", "receipt", "receipt_missing_from_b"), ("V0000006", "voucher", "only_in_b")]
    differs = report.samples["differs"][0]
    assert differs["number"] == "V0000003" and differs["detail"] == "amount"
    lines = Path(report.files["discrepancies"]).read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["kind"] == "only_in_a"


def test_identical_libraries_are_consistent(tmp_path: Path) -> None:
    report = reconcile("a", records([v(1), v(2)]), "b", records([v(1), v(2)]), tmp_path)
    assert report.consistent and report.compared == 2


def test_unsorted_export_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("number,type,business_date,amount,payer_account,payee_account\n"
                    "V2,direct,2026-11-27,1.00,a,b\nV1,direct,2026-11-27,1.00,a,b\n")
    with pytest.raises(SourceError, match="V1 at record 2 is out of order"):
        list(ordered("bank-a", from_file("bank-a", path)))


def test_bad_amount_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text('{"number":"V1","type":"t","business_date":"2026-11-27","amount":"1.00",'
                    '"payer_account":"a","payee_account":"b"}\n'
                    '{"number":"V2","type":"t","business_date":"2026-11-27","amount":"lots",'
                    '"payer_account":"a","payee_account":"b"}\n')
    with pytest.raises(SourceError, match=r"export.jsonl:2: bad value"):
        list(from_file("bank-a", path))


numbers = st.sets(st.integers(min_value=1, max_value=400), max_size=60)


@settings(max_examples=150, deadline=None)
@given(a=numbers, b=numbers, altered=numbers)
def test_merge_finds_exactly_the_set_differences(a: set[int], b: set[int], altered: set[int],
                                                 tmp_path_factory: pytest.TempPathFactory
                                                 ) -> None:
    out = tmp_path_factory.mktemp("r")
    va = [v(n) for n in sorted(a)]
    vb = [v(n, "1.00" if n in altered else "100.00") for n in sorted(b)]
    report = reconcile("a", records(va), "b", records(vb), out)
    assert report.counts["only_in_a"] == len(a - b)
    assert report.counts["only_in_b"] == len(b - a)
    assert report.counts["differs"] == len(a & b & altered)
    assert report.compared == len(a | b)
    sent = {r[0] for r in resend(report.files["resend a->b"])}
    assert sent == {f"V{n:07d}" for n in a - b}


def test_a_repeat_or_a_step_back_in_either_library_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^b: voucher V0000002 at record 3 is repeated"):
        reconcile("a", records([v(1), v(2), v(3)]), "b", records([v(1), v(2), v(2)]),
                  tmp_path)
    with pytest.raises(SourceError, match=r"^a: voucher V0000001 at record 3 is out of order"):
        reconcile("a", records([v(2), v(3), v(1)]), "b", records([v(2), v(3)]), tmp_path)


def test_unsigned_vouchers_that_moved_are_counted_per_party(tmp_path: Path) -> None:
    report = reconcile("a", records([v(1, signed=False), v(2), v(3, signed=False)]),
                       "b", records([v(1), v(2, signed=False)]), tmp_path)
    assert report.unsigned == {"a": 2, "b": 1}


text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(number=text, payee=text, cents=st.integers(-10**12, 10**12),
       state=st.tuples(*[st.booleans()] * 4))
def test_a_line_gives_back_its_voucher(number: str, payee: str, cents: int,
                                         state: tuple[bool, bool, bool, bool]) -> None:
    voucher = Voucher(number, "直接支付", DAY, Decimal(cents) / 100, "622", payee, *state)
    record = line_of(voucher)
    assert record.count(b"\t") == 6 and record.endswith(b"\n")  # escapes keep it one line
    assert voucher_of(record) == voucher
