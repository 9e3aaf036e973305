"""Working days on China's official calendar, for the plan's level II and I (P4.1).

Weekends and public holidays are not working days; the adjusted working days (调休)
that move a weekend day into the working week are. Years the chinese-calendar package
knows come from it; an inventory may add holidays and working days for years it does
not know yet. A year with no data falls back to Monday-Friday and says so, loudly and
early (from `WARN_DAYS` before New Year), never a crash.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import chinese_calendar

WARN_DAYS = 60
# Holidays fixed by date in the national holiday rules (New Year, Labour Day, National
# Day); used only for years without official data, whose lunar holidays and adjusted
# working days nobody can know in advance.
FIXED_HOLIDAYS = {(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)}


@dataclass
class WorkCalendar:
    extra_holidays: set[dt.date] = field(default_factory=set)
    extra_workdays: set[dt.date] = field(default_factory=set)
    complete_years: set[int] = field(default_factory=set)  # inventory covers these fully
    guessed_years: set[int] = field(default_factory=set)  # filled when a guess was needed
    _memo: dict[dt.date, bool] = field(default_factory=dict, repr=False)

    def is_workday(self, day: dt.date) -> bool:
        known = self._memo.get(day)
        if known is None:
            known = self._memo[day] = self._is_workday(day)
        return known

    def _is_workday(self, day: dt.date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            if day.year not in self.complete_years:
                self.guessed_years.add(day.year)
            return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS

    def why(self, day: dt.date) -> tuple[str, str]:
        """(English, Chinese) reason a day is or is not a working day."""
        if day in self.extra_workdays:
            return "working day (inventory)", "工作日（清单指定）"
        if day in self.extra_holidays:
            return "holiday (inventory)", "节假日（清单指定）"
        try:
            holiday, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            if (day.month, day.day) in FIXED_HOLIDAYS:
                return (f"fixed-date statutory holiday (no official data for {day.year})",
                        f"法定节假日（固定日期；无 {day.year} 年官方数据）")
            weekend = day.weekday() >= 5
            return (("weekend" if weekend else "weekday") + f" (no official data for {day.year})",
                    ("周末" if weekend else "工作日") + f"（无 {day.year} 年官方数据）")
        if not holiday and day.weekday() >= 5:
            return f"adjusted working day for {name}", f"调休上班（{_zh_holiday(name)}）"
        if holiday and name:
            return f"holiday: {name}", f"法定节假日：{_zh_holiday(name)}"
        if holiday:
            return "weekend", "周末"
        return "working day", "工作日"

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The same clock time on the `days`-th working day after start's date."""
        day, counted = start.date(), 0
        while counted < days:
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return dt.datetime.combine(day, start.timetz())

    def has_data(self, year: int) -> bool:
        if year in self.complete_years:
            return True
        try:
            chinese_calendar.is_workday(dt.date(year, 6, 1))
        except NotImplementedError:
            return False
        return True

    def warnings(self, today: dt.date) -> list[tuple[str, str]]:
        """Years the ladder may soon need but has no holiday data for."""
        years = {today.year} | ({today.year + 1}
                                if (dt.date(today.year + 1, 1, 1) - today).days <= WARN_DAYS
                                else set())
        return [(f"no official holiday data for {y}: levels II and I count Monday-Friday "
                 f"only; add vigil_calendar holidays and working days for {y}",
                 f"缺少 {y} 年法定节假日数据：二级、一级按周一至周五计算；请在清单 "
                 f"vigil_calendar 中补充 {y} 年节假日与调休")
                for y in sorted(years | self.guessed_years) if not self.has_data(y)]


_ZH = {"New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节",
       "Labour Day": "劳动节", "Dragon Boat Festival": "端午节", "National Day": "国庆节",
       "Mid-autumn Festival": "中秋节", "Anti-Fascist 70th Day": "抗战胜利70周年纪念日"}


def _zh_holiday(name: str | None) -> str:
    return _ZH.get(name or "", name or "")
