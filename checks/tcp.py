"""tcp: is a service port accepting connections, and how fast."""

from __future__ import annotations

import asyncio
import time

from pydantic import Field

from vigil.checks.base import AsyncProbe, ProbeParams
from vigil.model import CheckSpec
from vigil.result import Result, Say, Status


class TcpParams(ProbeParams):
    port: int = Field(ge=1, le=65535)
    address: str | None = None  # default: the host's ansible_host
    warning_ms: float = Field(500, gt=0)


class TcpProbe(AsyncProbe):
    kind = "tcp"
    Params = TcpParams

    async def arun(self, check: CheckSpec) -> Result:
        p: TcpParams = check.params
        address = p.address or check.address
        target = f"{address}:{p.port}"
        started = time.monotonic()
        try:
            async with asyncio.timeout(check.timeout_s):
                _reader, writer = await asyncio.open_connection(address, p.port)
        except TimeoutError:
            limit = f"{check.timeout_s:g}"
            return check.result(Status.CRITICAL, Say(f"{target}: no answer within {limit}s",
                                                     f"{target}：{limit} 秒内无应答"),
                                target=target, reachable=False)
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            return check.result(Status.CRITICAL, Say(f"{target}: {reason}",
                                                     f"{target} 无法连接：{reason}"),
                                target=target, reachable=False)
        rtt_ms = round((time.monotonic() - started) * 1000, 2)
        writer.close()
        status = Status.WARNING if rtt_ms >= p.warning_ms else Status.OK
        return check.result(status, Say(f"{target} accepts connections ({rtt_ms:.1f} ms)",
                                        f"{target} 连接正常（{rtt_ms:.1f} 毫秒）"),
                            target=target, reachable=True, connect_ms=rtt_ms)
