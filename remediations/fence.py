"""Fencing through a real fencing device: power a host off through its BMC with
ClusterLabs' fence agent (`fence_ipmilan`, Debian `fence-agents`), then ask the BMC again
and believe only an answer of OFF (the agents' convention: `status` exits 2 when off).

Options go to the agent on its standard input, never its command line, so the BMC's
password is not visible in the process list. A missing agent, a silent BMC or any answer
but OFF is "not fenced": the caller must not promote on it.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from vigil.errors import first_line
from vigil.model import FenceDevice
from vigil.secrets import SecretMissing, redact

STATUS_OFF = 2  # fence agents: `status` exits 0 when on, 2 when off
# The longest password IPMI carries: 16 bytes in IPMI 1.5, 20 over lanplus (2.0). A longer
# one is cut or refused by the BMC, which then looks like a BMC that does not answer.
PASSWORD_BYTES = {False: 16, True: 20}


@dataclass(frozen=True)
class Fenced:
    off: bool  # True only when the BMC said OFF after we asked for it
    why: str
    seconds: float


def _agent(device: FenceDevice, action: str) -> subprocess.CompletedProcess[str]:
    options = {"ip": device.ip, "ipport": str(device.port), "username": device.username,
               "password": device.password.reveal(), "action": action,
               "lanplus": "1" if device.lanplus else "0"}
    return subprocess.run([f"/usr/sbin/{device.agent}"], capture_output=True, text=True,
                          input="".join(f"{k}={v}\n" for k, v in options.items()),
                          timeout=device.timeout_s)


def _said(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
             if ln.strip() and "Warning" not in ln and "from pipes" not in ln]
    return redact(first_line(" | ".join(lines[-2:]), f"exit {proc.returncode}"))


def power_off(host: str, device: FenceDevice) -> Fenced:
    started = time.monotonic()

    def took() -> float:
        return round(time.monotonic() - started, 2)

    try:
        limit = PASSWORD_BYTES[device.lanplus]
        if len(device.password.reveal().encode()) > limit:
            return Fenced(False, f"{host}'s vigil_fence.password is longer than IPMI "
                                 f"{'2.0 (lanplus)' if device.lanplus else '1.5'} carries "
                                 f"({limit} bytes): not tried", took())
        off = _agent(device, "off")
        if off.returncode != 0:
            return Fenced(False, f"{device.agent} off on {host}'s BMC {device.ip}:"
                                 f"{device.port}: {_said(off)}", took())
        status = _agent(device, "status")
    except (OSError, subprocess.TimeoutExpired, SecretMissing) as exc:
        return Fenced(False, f"{device.agent} for {host}: "
                             f"{first_line(str(exc), type(exc).__name__)}", took())
    if status.returncode != STATUS_OFF:
        return Fenced(False, f"{host}'s BMC does not confirm power off: {_said(status)}",
                      took())
    return Fenced(True, f"{host} powered off through its BMC {device.ip}:{device.port} "
                        f"({device.agent}), confirmed OFF", took())
