"""The summary report of an incident for the leadership group (P5): what happened, when
each level was reached against when the plan's ladder says, what each of the plan's steps
did and who decided or did it, who was told, the voucher libraries' verdicts and the
offline handovers, and the analysis people write (cause, effect, measures, lessons,
responsibilities: `save_analysis`). In Chinese or English, as Markdown or a printable
HTML page with signature lines; `send` delivers it through the outbox and records it."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
from typing import Any
from zoneinfo import ZoneInfo

from markdown_it import MarkdownIt

from vigil import keys
from vigil.alerting.incidents import Incident, calendar_for, events_about, load_incident
from vigil.alerting.ladder import rungs
from vigil.alerting.reported import REPORTED
from vigil.clock import local_text
from vigil.delivery import outbox
from vigil.domain import FaultClass, Level, Role
from vigil.i18n import Lang, t
from vigil.model import Inventory
from vigil.remediations.steps import StepRecord, load_steps
from vigil.result import Result
from vigil.store import Event, Store

ANALYSIS = ("cause", "effect", "measures", "lessons", "responsibilities")

_ZH = {"title": "故障总结报告", "incident": "事件编号", "system": "系统", "class": "故障类别",
       "party": "责任方", "onset": "开始时间", "recovered": "恢复时间", "open": "尚未恢复",
       "duration": "持续", "highest": "最高级别", "found": "发现方式",
       "by_check": "监控检查", "by_person": "人工报告",
       "levels": "级别与预案时限", "level": "级别", "due": "按预案应达", "seen": "Vigil 记录",
       "steps": "预案步骤执行情况", "step": "步骤", "what": "内容", "clause": "条款",
       "kind": "方式", "status": "结果", "who": "执行/决定人", "when": "时间",
       "approved": "批准", "denied": "拒绝", "done": "完成", "note": "记录",
       "expired": "审批过期", "told": "通知情况", "contact": "通知对象", "first": "首次通知",
       "count": "条数", "messages": "消息", "sent": "条已送达", "pending": "条待发送",
       "chain": "事件日志哈希链校验", "verified": "凭证库核对", "handovers": "离线交换交接记录",
       "bundle": "交换包", "from_to": "发送方 → 接收方", "vouchers": "凭证笔数",
       "first_aid": "Vigil 即时处置（先于剧本）", "analysis": "分析与总结",
       "cause": "原因分析", "effect": "影响", "measures": "处置措施",
       "lessons": "经验教训与整改措施", "responsibilities": "责任认定",
       "unwritten": "（尚未填写：vigil report edit）", "edited": "填写人",
       "per": "依据预案 P5 编写；时间为站点当地时间", "none": "无",
       "sign": ["应急实施小组（签字）", "应急领导小组（签字）"], "date": "日期"}
_EN = {"title": "Incident summary report", "incident": "Incident", "system": "System",
       "class": "Fault class", "party": "Party", "onset": "Onset", "recovered": "Recovered",
       "open": "not yet", "duration": "Lasted", "highest": "Highest level",
       "found": "Found by", "by_check": "monitoring check", "by_person": "reported by hand",
       "levels": "Levels against the plan's ladder", "level": "Level",
       "due": "Due by the plan", "seen": "Recorded by Vigil",
       "steps": "The plan's steps", "step": "Step", "what": "What", "clause": "Clause",
       "kind": "Kind", "status": "Outcome", "who": "Done / decided by", "when": "When",
       "approved": "approved", "denied": "denied", "done": "done", "note": "note",
       "expired": "approval expired", "told": "Who was told", "contact": "Contact",
       "first": "First told", "count": "Messages", "messages": "Messages",
       "sent": "delivered", "pending": "pending", "chain": "Event-log hash chain",
       "verified": "Voucher libraries verified", "handovers": "Offline exchange handovers",
       "bundle": "Bundle", "from_to": "From → to", "vouchers": "Vouchers",
       "first_aid": "Done by Vigil at once (before the playbook)",
       "analysis": "Analysis", "cause": "Cause", "effect": "Effect",
       "measures": "Measures taken", "lessons": "Lessons and fixes",
       "responsibilities": "Responsibilities",
       "unwritten": "(not written yet: vigil report edit)", "edited": "Written by",
       "per": "Written per the plan's P5; times in the site's local time", "none": "none",
       "sign": ["Implementation team (signature)", "Leadership group (signature)"],
       "date": "Date"}


Analysis = dict[str, str]  # ANALYSIS fields, and who wrote them last (by, at)


class ReportRefused(ValueError):
    """A report that cannot be written or sent: one line saying why."""


def _incident(store: Store, incident: str) -> Incident:
    inc = load_incident(store, incident)
    if inc is None:
        raise ReportRefused(f"no incident {incident!r}")
    return inc


def save_analysis(store: Store, inv: Inventory, incident: str, fields: dict[str, str],
                  by: str, now: dt.datetime) -> Analysis:
    """Store what people conclude; fields not given keep what was written before."""
    _incident(store, incident)
    inv.contact(by)  # PermissionError for a stranger
    unknown = sorted(set(fields) - set(ANALYSIS))
    if unknown:
        raise ReportRefused(f"unknown field {unknown[0]!r} (one of {', '.join(ANALYSIS)})")
    given = {k: v.strip() for k, v in fields.items() if v is not None and v.strip()}
    if not given:
        raise ReportRefused(f"nothing to write: give at least one of {', '.join(ANALYSIS)}")
    with store.transaction() as tx:
        current: Analysis = tx.get_state(keys.analysis(incident)) or {}
        merged: Analysis = {**current, **given, "by": by, "at": now.isoformat()}
        tx.set_state(keys.analysis(incident), merged)
        tx.append("report.edited", incident, {"by": by, "fields": sorted(given)})
    return merged


def table_cell(text: Any) -> str:
    """Text inside a Markdown table cell: a `|` or a line break would end the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _who(rec: StepRecord) -> str:
    people = [a["by"] for a in rec["approvals"]]
    for who in (rec.get("denied_by"), rec.get("done_by")):
        if who:
            people.append(who)
    return ", ".join(dict.fromkeys(people)) or ("Vigil" if rec["kind"] in ("auto", "notify")
                                                 else "")


def incident_report(store: Store, inv: Inventory, incident: str, lang: str = "zh") -> str:
    """The report as Markdown."""
    w = _ZH if lang == "zh" else _EN
    lg: Lang = "en" if lang == "en" else "zh"
    tz = ZoneInfo(inv.site.timezone)
    inc = _incident(store, incident)
    events = events_about(store, [incident])
    system = inv.systems.get(inc["system"])
    klass = FaultClass(inc["fault_class"])
    onset = dt.datetime.fromisoformat(inc["onset"])
    recovered = inc.get("recovered_at")
    end = dt.datetime.fromisoformat(recovered) if recovered else None
    lasted = f"{(end - onset).total_seconds() / 3600:.1f} h" if end else w["open"]
    party = inv.parties.get(inc["party"] or "")
    opened = next((e for e in events if e.kind == "incident.opened"), None)
    found = f"{w['by_person']}: {opened.data.get('message')}" if opened and \
        Result.check_of(opened.data.get("check", "")) == REPORTED else \
        f"{w['by_check']} {', '.join(Result.check_of(c) for c in inc['checks'])}"
    lines = [f"# {w['title']}：{system.name.get(lang) if system else inc['system']}"
             if lang == "zh" else
             f"# {w['title']}: {system.name.get(lang) if system else inc['system']}", "",
             f"_{w['per']}（{inv.site.timezone}）_" if lang == "zh"
             else f"_{w['per']} ({inv.site.timezone})_", "",
             f"- {w['incident']}: {incident}",
             f"- {w['system']}: {system.name.get(lang) if system else ''} ({inc['system']})",
             f"- {w['party']}: {party.name.get(lang) if party else inc['party'] or ''}",
             f"- {w['class']}: {t(f'class.{klass.value}', lg)} ({klass.clause})",
             f"- {w['found']}: {found}",
             f"- {w['onset']}: {local_text(onset, tz)}",
             f"- {w['recovered']}: {local_text(recovered, tz) if recovered else w['open']}",
             f"- {w['duration']}: {lasted}",
             f"- {w['highest']}: {Level(inc['mark']).text(lang) if inc['mark'] else '-'}", ""]
    lines += _levels(inv, inc, events, w, lang, tz)
    lines += _steps(store, inv, incident, events, w, lang, tz)
    lines += _told(store, inv, incident, events, w, tz)
    lines += _exchanges(store, inc, events, w, tz)
    verdict = store.verify()
    lines += [f"{w['chain']}: {'ok' if verdict.ok else verdict.reason} "
              f"({verdict.count} events)", ""]
    lines += _analysis(store, incident, w, tz)
    lines += [""] + [f"{s}: ________________    {w['date']}: ____________" for s in w["sign"]]
    return "\n".join(lines) + "\n"


def _levels(inv: Inventory, inc: Incident, events: list[Event], w: dict[str, Any], lang: str,
            tz: ZoneInfo) -> list[str]:
    seen = {e.data["mark"]: e.at for e in events if e.kind == "incident.level"}
    ladder = rungs(dt.datetime.fromisoformat(inc["onset"]), calendar_for(inv), tz, inv.ladder)
    out = [f"## {w['levels']}", "", f"| {w['level']} | {w['due']} | {w['seen']} |",
           "|---|---|---|"]
    for rung in ladder:
        if rung.mark in seen:
            out.append(f"| {Level(rung.mark).text(lang)} | {local_text(rung.at, tz)} | "
                       f"{local_text(seen[rung.mark], tz)} |")
    return [*out, ""]


def _steps(store: Store, inv: Inventory, incident: str, events: list[Event],
           w: dict[str, Any], lang: str, tz: ZoneInfo) -> list[str]:
    out = [f"## {w['steps']}", "",
           f"| {w['step']} | {w['what']} | {w['clause']} | {w['kind']} | {w['status']} | "
           f"{w['who']} | {w['when']} |", "|---|---|---|---|---|---|---|"]
    records = sorted((r for r in load_steps(store) if r["incident"] == incident),
                     key=lambda r: (r["planned_at"], r["key"]))
    detail: list[str] = []
    for r in records:
        step = inv.site_runbook.step(FaultClass(r["fault_class"]), r["level"], r["step"])
        what = step.text(lang) if step else ""
        last = f" ({r['last']})" if r.get("last") else ""
        when = r.get("done_at") or (r["approvals"][-1]["at"] if r["approvals"] else
                                    r["planned_at"])
        out.append(f"| {r['level']}/{r['step']} | {table_cell(what)} | {r['clause']} | {r['kind']} "
                   f"| {table_cell(r['status'] + last)} | {table_cell(_who(r))} | "
                   f"{local_text(when, tz)} |")
        for e in (e for e in events if e.subject == r["key"]):
            said = {"step.approved": f"{w['approved']} {e.data.get('by')} "
                                     f"({', '.join(e.data.get('roles', []))})",
                    "step.denied": f"{w['denied']} {e.data.get('by')}: {e.data.get('reason')}",
                    "step.done": f"{w['done']} {e.data.get('by')}"
                                 + (f" — {w['note']}: {e.data['note']}"
                                    if e.data.get("note") else ""),
                    "step.expired": w["expired"]}.get(e.kind)
            if said:
                detail.append(f"- {r['level']}/{r['step']} {local_text(e.at, tz)}: {said}")
    out += ["", *detail, ""] if detail else [""]
    aid = [e for e in events if e.kind == "step.first_aid"]
    if aid:
        out += [f"{w['first_aid']}:", ""]
        out += [f"- {local_text(e.at, tz)} {e.data['clause']}: {e.data['why']}" for e in aid]
        out.append("")
    return out


def _told(store: Store, inv: Inventory, incident: str, events: list[Event],
          w: dict[str, Any], tz: ZoneInfo) -> list[str]:
    first: dict[str, str] = {}
    count: dict[str, int] = {}
    for e in events:
        if e.kind == "message.queued":
            who = e.data.get("contact", "")
            first.setdefault(who, e.at)
            count[who] = count.get(who, 0) + 1
    msgs = [m for m in store.states(keys.MESSAGE).values() if m.get("incident") == incident]
    sent = sum(m["status"] == "sent" for m in msgs)
    names = {c.id: c.name for c in inv.contacts}
    out = [f"## {w['told']}", "", f"| {w['contact']} | {w['first']} | {w['count']} |",
           "|---|---|---|"]
    out += [f"| {table_cell(names.get(c, c))} ({c}) | {local_text(at, tz)} | {count[c]} |"
            for c, at in first.items()]
    return [*out, "", f"{w['messages']}: {sent} {w['sent']}, {len(msgs) - sent} "
            f"{w['pending']}", ""]


def _exchanges(store: Store, inc: Incident, events: list[Event], w: dict[str, Any],
               tz: ZoneInfo) -> list[str]:
    out = []
    for e in (e for e in events if e.kind == "reconcile.verified"):  # P4.3.5(3)d
        checks = ", ".join(f"{k} {'ok' if e.data[k] else 'FAILED'}"
                           for k in ("integrity", "validity", "consistency"))
        out.append(f"- {w['verified']} {local_text(e.at, tz)}: {checks}")
    start, end = inc["onset"], inc.get("recovered_at") or "9999"
    moved = [e for kind in ("exchange.exported", "exchange.imported")
             for e in store.events(kind=kind) if start <= e.at <= end]
    if moved:  # the handover records of offline exchange during the fault (P4.3.7)
        out += ["", f"## {w['handovers']}", "",
                f"| {w['when']} | {w['bundle']} | {w['from_to']} | {w['vouchers']} |",
                "|---|---|---|---|"]
        out += [f"| {local_text(e.at, tz)} | {table_cell(e.subject)} ({e.kind.split('.')[1]}) | "
                f"{e.data.get('from')} → {e.data.get('to')} | {e.data.get('count')} |"
                for e in sorted(moved, key=lambda e: e.seq)]
    return [*out, ""] if out else []


def _analysis(store: Store, incident: str, w: dict[str, Any], tz: ZoneInfo) -> list[str]:
    written: Analysis = store.get_state(keys.analysis(incident)) or {}
    out = [f"## {w['analysis']}", ""]
    for field in ANALYSIS:
        text = str(written.get(field) or w["unwritten"])
        out += [f"### {w[field]}", "", text, ""]
    if written.get("by"):
        out.append(f"_{w['edited']}: {written['by']}, {local_text(written.get('at'), tz)}_")
    return out


def as_html(markdown: str, lang: str) -> str:
    """A printable page of the report. Raw HTML in what probes and people wrote is shown as
    text, never run."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    title = html.escape(markdown.splitlines()[0].lstrip("# "))
    return (f"<!doctype html><html lang={lang}><meta charset=utf-8><title>{title}</title>"
            "<style>body{font-family:serif;margin:2cm;line-height:1.5}"
            "table{border-collapse:collapse;width:100%;margin:1em 0}"
            "th,td{border:1px solid #000;padding:4px 6px;text-align:left;"
            "vertical-align:top;word-break:break-word}"
            "@media print{body{margin:1cm}h2{page-break-after:avoid}}</style>"
            f"{body}</html>\n")


def send(store: Store, inv: Inventory, incident: str, by: str, now: dt.datetime) -> list[str]:
    """Deliver the report to the leadership group through the outbox, each in their
    language; recorded with the text's digest. Returns who it went to."""
    _incident(store, incident)
    inv.contact(by)
    leaders = inv.contacts_with(Role.LEADERSHIP_GROUP)
    if not leaders:
        raise ReportRefused("the inventory names no leadership_group contact to send it to")
    texts = {lang: incident_report(store, inv, incident, lang) for lang in ("zh", "en")}
    sends = len(store.events(kind="report.sent", subject=incident))
    with store.transaction() as tx:
        for contact in leaders:
            text = texts[contact.lang]
            title = text.splitlines()[0].lstrip("# ")
            for index in range(len(contact.channels)):
                outbox.queue(tx, key=f"{incident}/report/{sends}/{contact.id}#{index}",
                             contact=contact, channel=index, title=title, body=text,
                             incident=incident, kind="report", now=now)
        tx.append("report.sent", incident, {
            "by": by, "to": [c.id for c in leaders],
            "sha256": {lang: hashlib.sha256(text.encode()).hexdigest()
                       for lang, text in texts.items()}})
    return [c.id for c in leaders]
