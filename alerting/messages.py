"""What people read: in Chinese by default, in English for contacts who ask for it.

Every message names the system, fault class, level, since when, the time to the next
level, what the plan says to do now with its clause IDs, and how to acknowledge.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from vigil.clock import local_text
from vigil.domain import FaultClass, Level
from vigil.i18n import t
from vigil.model import Inventory
from vigil.runbook import Runbook


@dataclass(frozen=True)
class Facts:
    incident: str
    system_name: tuple[str, str]  # (zh, en)
    fault_class: FaultClass
    mark: str
    onset: dt.datetime
    now: dt.datetime
    next_mark: str | None
    next_at: dt.datetime | None
    detail: tuple[str, str]  # what the checks said (zh, en)
    tz: ZoneInfo
    runbook: Runbook  # the site's: a step it disabled is never announced


def duration_text(seconds: float, lang: str) -> str:
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if lang == "en":
        parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{mins} min"]
        return " ".join(p for p in parts if p)
    parts = [f"{days} 天" if days else "", f"{hours} 小时" if hours else "", f"{mins} 分钟"]
    return "".join(p for p in parts if p)


def _plan(f: Facts, lang: str, level: str) -> list[str]:
    steps = f.runbook.steps(f.fault_class, level)
    return [f"· {s.text(lang)}（{s.clause}）" if lang == "zh" else f"- {s.text(lang)} ({s.clause})"
            for s in steps]


def incident_message(f: Facts, kind: str, lang: str) -> tuple[str, str]:
    """(title, body) for kind opened | level | reminder."""
    zh = lang != "en"
    system = f.system_name[0] if zh else f.system_name[1]
    klass = t(f"class.{f.fault_class.value}", "zh" if zh else "en")
    level = Level(f.mark).text(lang)
    onset = local_text(f.onset, f.tz)
    lasted = duration_text((f.now - f.onset).total_seconds(), lang)
    tag = {"opened": ("新故障", "new fault"), "level": ("升级", "escalated"),
           "reminder": ("未确认提醒", "unacknowledged")}[kind]
    title = (f"【Vigil {tag[0]}】{level}：{system}（{klass}）" if zh
             else f"[Vigil {tag[1]}] {level}: {system} ({klass})")
    lines = []
    if zh:
        lines.append(f"系统：{system}；故障类别：{klass}（{f.fault_class.clause}）；当前级别：{level}")
        lines.append(f"发生时间：{onset}（已持续 {lasted}）")
    else:
        lines.append(f"System: {system}; fault class: {klass} ({f.fault_class.clause}); "
                     f"level: {level}")
        lines.append(f"Since: {onset} ({lasted})")
    if f.next_mark and f.next_at:
        at = local_text(f.next_at, f.tz)
        left = duration_text((f.next_at - f.now).total_seconds(), lang)
        lines.append(f"下一级：{Level(f.next_mark).text(lang)}，于 {at}（还有 {left}）" if zh
                     else f"Next: {Level(f.next_mark).text(lang)} at {at} (in {left})")
    lines.append(("现象：" if zh else "Seen: ") + (f.detail[0] if zh else f.detail[1]))
    plan_level = Level(f.mark).plan_level.value
    lines.append("预案要求：" if zh else "The plan says:")
    lines.extend(_plan(f, lang, plan_level))
    lines.append(f"确认（停止重复提醒）：点下方链接，或 vigil ack {f.incident}" if zh
                 else f"Acknowledge (stops repeats): follow the link below, or vigil ack "
                      f"{f.incident}")
    return title, "\n".join(lines)


def recovery_message(f: Facts, lang: str) -> tuple[str, str]:
    zh = lang != "en"
    system = f.system_name[0] if zh else f.system_name[1]
    lasted = duration_text((f.now - f.onset).total_seconds(), lang)
    title = (f"【Vigil 已恢复】{system}" if zh else f"[Vigil recovered] {system}")
    lines = [f"{system} 已恢复，故障持续 {lasted}，最高级别 {Level(f.mark).text(lang)}。" if zh
             else f"{system} recovered after {lasted}; highest level {Level(f.mark).text(lang)}."]
    after = _plan(f, lang, "recovery")
    if after:
        lines.append("恢复后须完成：" if zh else "After recovery:")
        lines.extend(after)
    return title, "\n".join(lines)


def degraded_text(inv: Inventory, monitor: str, since: dt.datetime, why: str,
                  failing_zh: list[str], failing_en: list[str]) -> dict[str, tuple[str, str]]:
    """The page to the implementation team that the monitor itself is degraded (P4.2):
    the event store is unreachable, so incidents, escalation and remedies wait."""
    at = local_text(since, inv.site.timezone, seconds=True)
    seen_zh = "；".join(failing_zh[:10]) or "无"
    seen_en = "; ".join(failing_en[:10]) or "none"
    return {
        "zh": (f"【Vigil 监控降级】{inv.site.name.get('zh')}：事件库不可达",
               f"监控守护进程 {monitor} 自 {at} 起无法连接事件库（{why}）。\n"
               f"检查仍在进行，结果暂存本机，事件库恢复后并入事件日志；在此之前不会开启事件、"
               f"升级、自动处置或发送其他通知（P4.2：发现者报告应急实施小组）。\n"
               f"当前异常的检查：{seen_zh}"),
        "en": (f"[Vigil monitor degraded] {inv.site.name.get('en')}: event store unreachable",
               f"The monitoring daemon {monitor} cannot reach the event store since {at} "
               f"({why}).\nChecks go on and their results are kept on this server, to be "
               f"merged into the event log when the store returns; until then no incident "
               f"opens, escalates, is remedied or paged otherwise (P4.2: whoever finds a "
               f"fault reports it to the implementation team).\n"
               f"Checks failing now: {seen_en}")}


def store_back_text(inv: Inventory, monitor: str, since: dt.datetime
                    ) -> dict[str, tuple[str, str]]:
    at = local_text(since, inv.site.timezone, seconds=True)
    return {
        "zh": (f"【Vigil 监控恢复】{inv.site.name.get('zh')}：事件库已恢复",
               f"监控守护进程 {monitor} 已重新连接事件库（自 {at} 起中断）；暂存的检查结果已并入"
               f"事件日志，事件与通知照常进行。"),
        "en": (f"[Vigil monitor recovered] {inv.site.name.get('en')}: event store back",
               f"The monitoring daemon {monitor} reaches the event store again (lost since "
               f"{at}); the results kept meanwhile are merged into the event log, and "
               f"incidents and messages go on as usual.")}


def zabbix_away_text(inv: Inventory, server: str, since: dt.datetime, trouble: str
                     ) -> dict[str, tuple[str, str]]:
    """To the implementation team: the county's Zabbix has not taken Vigil's values for a
    while. Vigil's checks and pages go on; the Zabbix frontend shows stale levels."""
    at = local_text(since, inv.site.timezone, seconds=True)
    return {
        "zh": (f"【Vigil 监控】{inv.site.name.get('zh')}：Zabbix {server} 无法送达",
               f"自 {at} 起 Vigil 无法向 Zabbix {server} 发送数据（{trouble}）。Vigil 的检查、"
               f"事件、升级与通知照常进行，但 Zabbix 前台显示的故障级别已不是最新，"
               f"Vigil 心跳触发器也将告警。请检查 Zabbix 服务器及其网络（P4.2）。"),
        "en": (f"[Vigil monitor] {inv.site.name.get('en')}: Zabbix {server} unreachable",
               f"Since {at} Vigil cannot send to Zabbix {server} ({trouble}). Vigil's checks, "
               f"incidents, escalation and messages go on, but the levels the Zabbix frontend "
               f"shows are stale and Vigil's heartbeat trigger will fire there. Check the "
               f"Zabbix server and the network to it (P4.2).")}


def takeover_text(inv: Inventory, monitor: str, silent: str, at: dt.datetime
                  ) -> dict[str, tuple[str, str]]:
    """To the implementation team: a monitoring daemon stopped leading without handing over
    (dead, hung or cut off from the store); another took over, and watches alone until the
    silent one is mended (P4.2: whoever finds a fault reports it)."""
    when = local_text(at, inv.site.timezone, seconds=True)
    return {
        "zh": (f"【Vigil 监控切换】{inv.site.name.get('zh')}：监控守护进程 {silent} 失联",
               f"监控守护进程 {silent} 未交接即停止续租（宕机、挂起或与事件库断开），"
               f"{monitor} 已于 {when} 接管，检查、事件、升级与通知照常进行。\n"
               f"在 {silent} 修复之前只有一台监控在运行：请检查该服务器及其与事件库的网络"
               f"（vigil monitors 列出各守护进程；P4.2：发现者报告应急实施小组）。"),
        "en": (f"[Vigil monitor failover] {inv.site.name.get('en')}: monitoring daemon "
               f"{silent} silent",
               f"The monitoring daemon {silent} stopped renewing its lease without handing "
               f"over (dead, hung, or cut off from the event store); {monitor} took over at "
               f"{when}, and checks, incidents, escalation and messages go on.\n"
               f"Until {silent} is mended only one monitor runs: check that server and its "
               f"network to the event store (`vigil monitors` lists the daemons; P4.2: "
               f"whoever finds a fault reports it to the implementation team).")}
