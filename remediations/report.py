"""The summary report of an incident for the leadership group (P5): what happened, when
each level was reached, what the plan's steps did and who decided, with clause IDs; the
cause analysis and lessons are left for people to write."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from vigil import keys
from vigil.alerting.incidents import load_incident
from vigil.remediations.steps import StepRecord, load_steps
from vigil.store import Store

_ZH = {"title": "故障总结报告", "incident": "事件", "system": "系统", "class": "故障类别",
       "onset": "开始时间", "recovered": "恢复时间", "open": "尚未恢复", "duration": "持续",
       "levels": "级别变化", "steps": "预案步骤执行情况", "step": "步骤", "clause": "条款",
       "kind": "方式", "status": "结果", "who": "执行/决定人", "messages": "通知",
       "sent": "条消息已送达", "pending": "条待发送", "cause": "原因分析（由实施小组填写）",
       "lessons": "经验教训与整改措施（由实施小组填写）", "per": "依据预案 P5 编写",
       "chain": "事件日志哈希链校验", "verified": "凭证库核对",
       "first_aid": "Vigil 即时处置（先于剧本）"}
_EN = {"title": "Incident summary report", "incident": "Incident", "system": "System",
       "class": "Fault class", "onset": "Onset", "recovered": "Recovered", "open": "not yet",
       "duration": "Lasted", "levels": "Levels reached", "steps": "The plan's steps",
       "step": "Step", "clause": "Clause", "kind": "Kind", "status": "Outcome",
       "who": "Done / decided by", "messages": "Messages", "sent": "delivered",
       "pending": "pending", "cause": "Cause analysis (for the implementation team)",
       "lessons": "Lessons and fixes (for the implementation team)",
       "per": "Written per the plan's P5", "chain": "Event-log hash chain",
       "verified": "Voucher libraries verified",
       "first_aid": "Done by Vigil at once (before the playbook)"}


def _local(at: str, tz: ZoneInfo) -> str:
    return dt.datetime.fromisoformat(at).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _who(rec: StepRecord) -> str:
    people = [a["by"] for a in rec["approvals"]]
    for who in (rec.get("denied_by"), rec.get("done_by")):
        if who:
            people.append(who)
    return ", ".join(dict.fromkeys(people)) or ("Vigil" if rec["kind"] in ("auto", "notify")
                                                 else "")


def incident_report(store: Store, incident: str, tz: ZoneInfo, lang: str = "zh") -> str:
    words = _ZH if lang == "zh" else _EN
    inc = load_incident(store, incident)
    if inc is None:
        raise LookupError(f"no incident {incident!r}")
    events = [e for e in store.events() if e.subject == incident
              or e.data.get("incident") == incident]
    recovered = inc.get("recovered_at")
    end = dt.datetime.fromisoformat(recovered) if recovered else None
    onset = dt.datetime.fromisoformat(inc["onset"])
    lasted = f"{(end - onset).total_seconds() / 3600:.1f} h" if end else words["open"]
    lines = [f"# {words['title']}: {incident}", "",
             f"- {words['system']}: {inc['system']}",
             f"- {words['class']}: {inc['fault_class']}",
             f"- {words['onset']}: {_local(inc['onset'], tz)}",
             f"- {words['recovered']}: {_local(recovered, tz) if recovered else words['open']}",
             f"- {words['duration']}: {lasted}", "", f"## {words['levels']}", ""]
    lines += [f"- {_local(e.at, tz)} → {e.data['mark']}" for e in events
              if e.kind == "incident.level"]
    lines += ["", f"## {words['steps']}", "",
              f"| {words['step']} | {words['clause']} | {words['kind']} | {words['status']} | "
              f"{words['who']} |", "|---|---|---|---|---|"]
    records = sorted((r for r in load_steps(store) if r["incident"] == incident),
                     key=lambda r: (r["planned_at"], r["key"]))
    for r in records:
        detail = f" ({r['last']})" if r.get("last") else ""
        lines.append(f"| {r['level']}/{r['step']} | {r['clause']} | {r['kind']} | "
                     f"{r['status']}{detail} | {_who(r)} |")
    aid = [e for e in events if e.kind == "step.first_aid"]
    if aid:
        lines += ["", f"{words['first_aid']}:", ""]
        lines += [f"- {_local(e.at, tz)} {e.data['clause']}: {e.data['why']}" for e in aid]
    msgs = [m for m in store.states(keys.MESSAGE).values() if m.get("incident") == incident]
    sent = sum(m["status"] == "sent" for m in msgs)
    verdict = store.verify()
    lines += ["", f"## {words['messages']}", "",
              f"{sent} {words['sent']}, {len(msgs) - sent} {words['pending']}", "",
              f"{words['chain']}: {'ok' if verdict.ok else verdict.reason} "
              f"({verdict.count} events)", ""]
    for e in (e for e in events if e.kind == "reconcile.verified"):  # P4.3.5(3)d
        checks = ", ".join(f"{k} {'ok' if e.data[k] else 'FAILED'}"
                           for k in ("integrity", "validity", "consistency"))
        lines.append(f"- {words['verified']} {_local(e.at, tz)}: {checks}")
    lines += ["", f"## {words['cause']}", "", "", "",
              f"## {words['lessons']}", "", "", "", f"_{words['per']}_", ""]
    return "\n".join(lines)
