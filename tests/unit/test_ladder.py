"""The ladder on China's calendar: weekends, golden week, adjusted working days, New Year."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from tests.conftest import VigilRunner
from vigil.alerting.calendar import WorkCalendar
from vigil.alerting.ladder import reached, rungs

TZ = ZoneInfo("Asia/Shanghai")


def _marks(onset: dt.datetime, cal: WorkCalendar | None = None) -> dict[str, str]:
    return {r.mark: f"{r.at:%Y-%m-%d %H:%M}" for r in rungs(onset, cal or WorkCalendar(), TZ)}


def test_across_a_weekend() -> None:
    marks = _marks(dt.datetime(2026, 11, 27, 15, 0, tzinfo=TZ))  # a Friday
    assert marks == {"IV": "2026-11-27 15:00", "IV+": "2026-11-27 19:00",
                     "III": "2026-11-28 15:00", "II": "2026-12-01 15:00",
                     "I": "2026-12-04 15:00"}


def test_onset_on_a_saturday_counts_from_monday() -> None:
    marks = _marks(dt.datetime(2026, 11, 28, 10, 0, tzinfo=TZ))
    assert marks["II"] == "2026-12-01 10:00" and marks["I"] == "2026-12-04 10:00"


def test_national_day_golden_week_and_its_adjusted_saturday() -> None:
    marks = _marks(dt.datetime(2026, 9, 30, 16, 0, tzinfo=TZ))
    # Oct 1-7 are holidays; Oct 8 and 9 are the 1st and 2nd working days; Saturday Oct 10
    # is an adjusted working day (调休) and counts; Sunday Oct 11 does not.
    assert marks["III"] == "2026-10-01 16:00"
    assert marks["II"] == "2026-10-09 16:00"
    assert marks["I"] == "2026-10-13 16:00"


def test_year_without_official_data_warns_and_does_not_crash() -> None:
    cal = WorkCalendar()
    marks = _marks(dt.datetime(2026, 12, 30, 10, 0, tzinfo=TZ), cal)
    # Dec 31 (Thu) is the 1st working day; New Year's Day is a holiday by fixed date even
    # without data; Jan 2-3 are a weekend; Monday Jan 4 is the 2nd working day.
    assert marks["II"] == "2027-01-04 10:00"
    assert 2027 in cal.guessed_years
    (en, zh), = cal.warnings(dt.date(2026, 11, 28))
    assert "2027" in en and "vigil_calendar" in en and "2027" in zh
    assert WorkCalendar().warnings(dt.date(2026, 6, 1)) == []  # too early to worry


def test_inventory_data_for_a_new_year_is_used() -> None:
    cal = WorkCalendar(extra_workdays={dt.date(2027, 1, 2)}, complete_years={2027})
    marks = _marks(dt.datetime(2026, 12, 30, 10, 0, tzinfo=TZ), cal)
    assert marks["II"] == "2027-01-02 10:00"  # a Saturday made a working day
    assert cal.warnings(dt.date(2026, 12, 1)) == []


def test_the_level_is_a_pure_function_of_onset_and_now() -> None:
    onset = dt.datetime(2026, 9, 30, 16, 0, tzinfo=TZ)
    now = dt.datetime(2026, 10, 9, 15, 59, tzinfo=TZ)
    assert reached(onset, now, WorkCalendar(), TZ).mark == "III"
    assert reached(onset, now + dt.timedelta(minutes=1), WorkCalendar(), TZ).mark == "II"
    assert reached(onset, now, WorkCalendar(), TZ).mark == "III"  # again: nothing stored


def test_cli_explain_shows_levels_and_the_days_counted(vigil: VigilRunner) -> None:
    run = vigil("ladder", "explain", "--onset", "2026-09-30T16:00", "--now",
                "2026-10-09T17:00", "--lang", "en", "--json")
    assert run.code == 0, run.err
    import json

    data = json.loads(run.out)
    reached_marks = [r["mark"] for r in data["rungs"] if r["reached"]]
    assert reached_marks == ["IV", "IV+", "III", "II"]
    saturday = next(d for d in data["days"] if d["date"] == "2026-10-10")
    assert saturday["working"] and "adjusted" in saturday["why"]
    zh = vigil("ladder", "explain", "--onset", "2026-09-30T16:00")
    assert "调休上班（国庆节）" in zh.out and "二级" in zh.out
    bad = vigil("ladder", "explain", "--onset", "yesterday")
    assert bad.code == 3 and "Traceback" not in bad.err
