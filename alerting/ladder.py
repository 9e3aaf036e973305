"""The escalation ladder of P4.1, as a pure function of onset, now and the calendar.

Every fault is level IV when it occurs (and "IV confirmed" once it has lasted 4 hours),
level III after 24 hours, level II after 2 working days and level I after 5 working
days. Nothing is stored but the onset, so a restart never resets a clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from vigil.alerting.calendar import WorkCalendar
from vigil.domain import Level
from vigil.model import LadderVars

DEFAULT = LadderVars()  # the plan's own thresholds (P4.1); a site may change them (P6)


@dataclass(frozen=True)
class Rung:
    mark: Level  # the rung: IV, IV confirmed, III, II, I
    at: dt.datetime  # in the site's time zone
    rule_en: str
    rule_zh: str


def rungs(onset: dt.datetime, calendar: WorkCalendar, tz: ZoneInfo,
          config: LadderVars = DEFAULT) -> list[Rung]:
    """When each mark of the ladder is reached, for a fault that began at `onset`."""
    local = onset.astimezone(tz)
    c = config
    out = [
        Rung(Level.IV, local, "at onset (every fault is first level IV)",
             "发生即定为四级"),
        Rung(Level.IV_CONFIRMED, local + dt.timedelta(hours=c.iv_confirmed_hours),
             f"{c.iv_confirmed_hours:g} hours unrecovered (level IV confirmed)",
             f"持续 {c.iv_confirmed_hours:g} 小时未恢复（确认四级）"),
        Rung(Level.III, local + dt.timedelta(hours=c.iii_hours),
             f"{c.iii_hours:g} hours unrecovered", f"持续 {c.iii_hours:g} 小时未恢复"),
        Rung(Level.II, calendar.add_working_days(local, c.ii_working_days),
             f"{c.ii_working_days} working days unrecovered",
             f"持续 {c.ii_working_days} 个工作日未恢复"),
        Rung(Level.I, calendar.add_working_days(local, c.i_working_days),
             f"{c.i_working_days} working days unrecovered",
             f"持续 {c.i_working_days} 个工作日未恢复"),
    ]
    # A rung is never earlier than the one below it, whatever the thresholds say.
    for i in range(1, len(out)):
        if out[i].at < out[i - 1].at:
            prev = out[i - 1].at
            out[i] = Rung(out[i].mark, prev, out[i].rule_en, out[i].rule_zh)
    return out


def reached(onset: dt.datetime, now: dt.datetime, calendar: WorkCalendar, tz: ZoneInfo,
            config: LadderVars = DEFAULT) -> Rung:
    """The highest rung reached by `now`."""
    done = [r for r in rungs(onset, calendar, tz, config) if r.at <= now.astimezone(tz)]
    return done[-1] if done else rungs(onset, calendar, tz, config)[0]


def next_rung(onset: dt.datetime, now: dt.datetime, calendar: WorkCalendar, tz: ZoneInfo,
              config: LadderVars = DEFAULT) -> Rung | None:
    ahead = [r for r in rungs(onset, calendar, tz, config) if r.at > now.astimezone(tz)]
    return ahead[0] if ahead else None
