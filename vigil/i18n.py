"""Words people read, in Chinese (the default) and English."""

from __future__ import annotations

import os
from typing import Literal

Lang = Literal["zh", "en"]

_CATALOGUE: dict[str, tuple[str, str]] = {
    "status.ok": ("正常", "ok"),
    "status.warning": ("警告", "warning"),
    "status.critical": ("严重", "critical"),
    "status.unknown": ("未知", "unknown"),
    "class.infrastructure": ("信息基础设施", "infrastructure"),
    "class.database": ("数据库", "database"),
    "class.peripheral": ("外围系统", "peripheral system"),
    "class.core": ("核心系统", "core system"),
    "class.voucher_library": ("电子凭证库", "voucher library"),
    "class.ca_seal": ("CA与电子签章", "CA / e-seal"),
    "class.mq_network": ("MQ与网络通信", "MQ / network"),
    "col.status": ("状态", "Status"),
    "col.system": ("系统", "System"),
    "col.class": ("故障类别", "Fault class"),
    "col.check": ("检查", "Check"),
    "col.target": ("目标", "Target"),
    "col.message": ("说明", "Message"),
    "col.duration": ("耗时", "Time"),
    "col.seq": ("序号", "Seq"),
    "col.at": ("时间", "At"),
    "col.kind": ("类型", "Kind"),
    "col.subject": ("对象", "Subject"),
    "col.data": ("内容", "Data"),
    "col.host": ("主机", "Host"),
    "col.party": ("单位", "Party"),
    "col.roles": ("角色", "Roles"),
    "col.depends": ("依赖", "Depends on"),
    "check.title": ("检查结果：{site}（{n} 项）", "Check results: {site} ({n} checks)"),
    "check.summary": ("正常 {ok}，警告 {warning}，严重 {critical}，未知 {unknown}",
                      "ok {ok}, warning {warning}, critical {critical}, unknown {unknown}"),
    "check.recorded": ("已记录 {n} 个状态变化到 {store}", "recorded {n} status changes in {store}"),
    "check.none": ("没有匹配的检查项：{limit}", "no check matches {limit}"),
    "check.progress": ("正在检查", "Checking"),
    "inventory.error": ("清单错误", "inventory error"),
    "inventory.ok": ("清单有效：{hosts} 台主机，{systems} 个系统，{checks} 项检查，"
                     "{contacts} 位联系人",
                     "inventory valid: {hosts} hosts, {systems} systems, {checks} checks, "
                     "{contacts} contacts"),
    "store.error": ("事件库错误", "store error"),
    "verify.ok": ("事件链完整：{n} 条事件，哈希链校验通过",
                  "event chain intact: {n} events verified"),
    "verify.bad": ("事件链被破坏：{reason}", "event chain broken: {reason}"),
    "events.none": ("没有事件", "no events"),
}


def default_lang() -> Lang:
    return "en" if os.environ.get("VIGIL_LANG", "zh").lower().startswith("en") else "zh"


def t(key: str, lang: Lang = "zh", **values: object) -> str:
    zh, en = _CATALOGUE[key]
    return (en if lang == "en" else zh).format(**values)
