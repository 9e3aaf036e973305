"""links (infrastructure / mq_network, P4.3.1(2)): a site's primary and backup lines.

Each line is measured on its own from the site router (over SSH): pings leave through
the line's interface to a far-end address. The default route tells which line carries
the traffic now.
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, ConfigDict, Field

from vigil.checks import ssh
from vigil.checks.base import Finding, Probe, ProbeParams, verdict
from vigil.model import CheckSpec
from vigil.result import Metric, Result, Say, Status


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str  # "primary", "backup"
    interface: str
    target: str  # an address at the far end, reached through this line


class LinksParams(ProbeParams):
    lines: list[Line] = Field(min_length=1)
    primary: str = "primary"
    count: int = Field(3, ge=1, le=20)
    loss_warning: float = Field(20, ge=0, le=100)
    rtt_warning_ms: float = Field(300, gt=0)


_PING = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(r"= [\d.]+/([\d.]+)/")


class LinksProbe(Probe):
    kind = "links"
    Params = LinksParams

    def run(self, check: CheckSpec) -> Result:
        p: LinksParams = check.params
        if check.ssh is None:
            return check.result(Status.UNKNOWN, Say(
                "links are measured on the site router over SSH, but this host has no SSH "
                "settings", "线路须在站点路由器上经 SSH 测量，但该主机未配置 SSH"))
        # The lines are pinged in parallel, each into its own file, then printed in order.
        script = "\n".join([
            "d=$(mktemp -d)",
            *(f"(echo @{ln.name}; ping -n -q -c {p.count} -i 0.2 -W 1 "
              f"-I {shlex.quote(ln.interface)} {shlex.quote(ln.target)} 2>&1) > $d/{i} &"
              for i, ln in enumerate(p.lines)),
            "wait", "cat $d/*; rm -rf $d", "echo @route", "ip -o route show default"])
        try:
            out = ssh.run(check.ssh, script, check.timeout_s)
        except ssh.SshFailure as exc:
            return check.result(Status.CRITICAL, Say(f"site router unreachable: {exc.say.en}",
                                                     f"站点路由器无法访问：{exc.say.zh}"),
                                router_reachable=False)
        if "@route" not in out.out:
            why = (out.err.strip().splitlines() or ["no output"])[-1]
            return check.result(Status.UNKNOWN, Say(f"line measurement failed on the router: "
                                                    f"{why}", f"路由器上线路测量失败：{why}"))
        return self.evaluate(check, p, out.out)

    def evaluate(self, check: CheckSpec, p: LinksParams, out: str) -> Result:
        sections = _sections(out)
        metrics: dict[str, Metric] = {"router_reachable": True}
        up: dict[str, bool] = {}
        findings: list[Finding] = []
        for ln in p.lines:
            text = sections.get(ln.name, "")
            sent, got = _counts(text)
            loss = 100.0 * (sent - got) / sent if sent else 100.0
            rtt = _RTT.search(text)
            metrics[f"line_up:{ln.name}"] = got > 0
            metrics[f"loss_percent:{ln.name}"] = round(loss, 1)
            metrics[f"rtt_ms:{ln.name}"] = float(rtt.group(1)) if rtt else None
            up[ln.name] = got > 0
            slow = rtt is not None and float(rtt.group(1)) >= p.rtt_warning_ms
            if got and (loss >= p.loss_warning or slow):
                findings.append((Status.WARNING, Say(
                    f"{ln.name} line degraded ({loss:.0f}% loss)",
                    f"{_zh(ln.name)}质量下降（丢包 {loss:.0f}%）")))
        route = sections.get("route", "")
        active = next((ln.name for ln in p.lines if f" dev {ln.interface} " in f" {route} "),
                      None)
        metrics["active_line"] = active
        primary = p.primary
        others = [n for n in up if n != primary]
        if not any(up.values()):
            findings.append((Status.CRITICAL, Say(
                "all lines down: tell every party to stop sending MQ data (P4.3.1(1))",
                "所有线路中断：立即通知各方停止发送 MQ 数据（P4.3.1(1)）")))
        elif not up.get(primary, True):
            if active and active != primary:
                findings.append((Status.CRITICAL, Say(
                    f"{primary} line down; traffic already on the {active} line (P4.3.1(2))",
                    f"{_zh(primary)}中断，业务已切换到{_zh(active)}（P4.3.1(2)）")))
            else:
                findings.append((Status.CRITICAL, Say(
                    f"{primary} line down: switch to the backup line (P4.3.1(2))",
                    f"{_zh(primary)}中断：应切换到备用线路（P4.3.1(2)）")))
        else:
            for name in others:
                if not up[name]:
                    findings.append((Status.WARNING, Say(
                        f"{name} line down: no fallback if the {primary} line fails",
                        f"{_zh(name)}中断：{_zh(primary)}再出故障将无备用")))
            if active and active != primary:
                findings.append((Status.WARNING, Say(
                    f"{primary} line healthy but traffic still on the {active} line "
                    "(fail back after the hold time)",
                    f"{_zh(primary)}已恢复，业务仍在{_zh(active)}上（稳定后切回）")))
        if active is None:
            findings.append((Status.WARNING, Say("no default route through any known line",
                                                 "默认路由不经过任何已知线路")))
        healthy = Say("lines " + ", ".join(f"{n} up" for n in up) + f"; traffic on {active}",
                      "、".join(_zh(n) for n in up) + f"均正常；业务走{_zh(active or '')}")
        status, say = verdict(findings, healthy)
        return check.result(status, say, metrics=metrics)


def _zh(line: str) -> str:
    return {"primary": "主线路", "backup": "备用线路"}.get(line, f"{line} 线路")


def _sections(out: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line[1:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


def _counts(text: str) -> tuple[int, int]:
    match = _PING.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
