"""power (infrastructure, P4.3.1 external power): a UPS over the NUT protocol.

`ups.status` OL is ok; OB (on battery) a warning; LB (low battery), or OB with the
runtime under a threshold, critical. ALARM, RB (replace battery) and BYPASS are reported.

The NUT protocol is a few text lines over TCP; this client is written here because the
upstream Python client loops forever when the server closes the connection.
"""

from __future__ import annotations

import socket

from pydantic import Field

from vigil.checks.base import Probe, ProbeParams
from vigil.model import CheckSpec
from vigil.result import Metric, Result, Say, Status
from vigil.secrets import SecretField


class NutError(Exception):
    pass


class PowerParams(ProbeParams):
    ups: str
    port: int = Field(3493, ge=1, le=65535)
    address: str | None = None
    user: str | None = None
    password: SecretField | None = None
    runtime_critical_s: float = Field(600, ge=0)
    charge_warning: float = Field(50, ge=0, le=100)


def list_vars(address: str, port: int, ups: str, timeout: float) -> dict[str, str]:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(f"LIST VAR {ups}\n".encode())
        buf = b""
        end = f"END LIST VAR {ups}\n".encode()
        while end not in buf and not buf.startswith(b"ERR"):
            chunk = sock.recv(4096)
            if not chunk:
                raise NutError("upsd closed the connection")
            buf += chunk
            if buf.startswith(b"ERR") and b"\n" in buf:
                break
        sock.sendall(b"LOGOUT\n")
    text = buf.decode("utf-8", "replace")
    if text.startswith("ERR"):
        raise NutError(text.split("\n")[0])
    values = {}
    prefix = f"VAR {ups} "
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, rest = line[len(prefix):].partition(" ")
            values[name] = rest.strip().strip('"')
    return values


def _num(values: dict[str, str], key: str) -> float | None:
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return None


class PowerProbe(Probe):
    kind = "power"
    Params = PowerParams

    def run(self, check: CheckSpec) -> Result:
        p: PowerParams = check.params
        address = p.address or check.address
        target = f"{p.ups}@{address}:{p.port}"
        try:
            values = list_vars(address, p.port, p.ups, check.timeout_s)
        except NutError as exc:
            unknown_ups = "UNKNOWN-UPS" in str(exc)
            return check.result(Status.CRITICAL if unknown_ups else Status.UNKNOWN,
                                Say(f"{target}: {exc}", f"{target}：{exc}"), target=target)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            return check.result(Status.CRITICAL, Say(f"{target}: NUT server unreachable ({why})",
                                                     f"{target}：UPS 监控服务无法连接（{why}）"),
                                target=target, reachable=False)
        flags = values.get("ups.status", "").split()
        charge = _num(values, "battery.charge")
        runtime = _num(values, "battery.runtime")
        metrics: dict[str, Metric] = {
            "reachable": True, "ups_status": " ".join(flags), "on_battery": "OB" in flags,
            "battery_charge_percent": charge, "battery_runtime_s": runtime,
            "load_percent": _num(values, "ups.load"),
        }
        notes: list[Say] = []
        if "LB" in flags:
            status = Status.CRITICAL
            head = Say("low battery: shutdown imminent", "电池电量低：即将断电关机")
        elif "OB" in flags and runtime is not None and runtime < p.runtime_critical_s:
            status = Status.CRITICAL
            head = Say(f"on battery, {runtime / 60:.0f} min left",
                       f"电池供电，仅剩约 {runtime / 60:.0f} 分钟")
        elif "OB" in flags:
            status = Status.WARNING
            head = Say("on battery: external power lost (P4.3.1)",
                       "外部供电中断，UPS 电池供电中（P4.3.1）")
        elif "OL" in flags:
            status, head = Status.OK, Say("on line power", "市电供电正常")
        else:
            shown = " ".join(flags) or "missing"
            status, head = Status.UNKNOWN, Say(f"status {shown}", f"状态 {shown}")
        for flag, say in (("ALARM", Say("alarm", "告警")),
                          ("RB", Say("replace battery", "需更换电池")),
                          ("BYPASS", Say("on bypass: no protection", "旁路运行：无保护")),
                          ("OVER", Say("overloaded", "过载"))):
            if flag in flags:
                notes.append(say)
                if status is Status.OK:
                    status = Status.WARNING
        if charge is not None and charge < p.charge_warning and status is Status.OK:
            status = Status.WARNING
            notes.append(Say(f"battery {charge:.0f}%", f"电池电量 {charge:.0f}%"))
        if charge is not None and runtime is not None:
            notes.append(Say(f"charge {charge:.0f}%, runtime {runtime / 60:.0f} min",
                             f"电量 {charge:.0f}%，可续航 {runtime / 60:.0f} 分钟"))
        return check.result(status, Say.join([head, *notes]), target=target, metrics=metrics)
