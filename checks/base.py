"""What a check is (from the inventory) and what a probe must do with it."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from vigil.model import CheckSpec, SshTarget, ZabbixVars
from vigil.result import Result, Say, Status


class ProbeParams(BaseModel):
    """Base of every probe's parameters: unknown keys are an inventory error."""

    model_config = ConfigDict(extra="forbid")


class BindError(Exception):
    """A parameter names something the inventory does not have (loc is within params)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


@dataclass(frozen=True)
class BindContext:
    """What of the inventory a probe's parameters may refer to."""

    ssh_targets: Mapping[str, SshTarget | None]  # host name -> how to reach it by SSH
    zabbix: ZabbixVars | None = None  # the county's Zabbix (vigil_zabbix)


class Probe(ABC):
    """One kind of probe. Unreachable or faulty targets are Results, never exceptions."""

    kind: ClassVar[str]
    Params: ClassVar[type[ProbeParams]]
    # This kind's own defaults, ahead of the site's vigil_check_defaults (a check's own
    # interval / timeout still wins): some faults cannot wait a minute to be seen.
    interval_s: ClassVar[float | None] = None
    timeout_s: ClassVar[float | None] = None

    def bind(self, params: Any, ctx: BindContext) -> Any:
        """Resolve references to other inventory hosts once, when the inventory loads."""
        return params

    @abstractmethod
    def run(self, check: CheckSpec) -> Result: ...

    def __call__(self, check: CheckSpec) -> Result:
        started = time.monotonic()
        result = self.run(check)
        result.duration_s = round(time.monotonic() - started, 4)
        return result


class AsyncProbe(Probe):
    """A probe that only waits on sockets: thousands run in one event loop, no thread each."""

    @abstractmethod
    async def arun(self, check: CheckSpec) -> Result: ...

    def run(self, check: CheckSpec) -> Result:
        return asyncio.run(self.arun(check))

    async def acall(self, check: CheckSpec) -> Result:
        started = time.monotonic()
        result = await self.arun(check)
        result.duration_s = round(time.monotonic() - started, 4)
        return result


Finding = tuple[Status, Say]


def verdict(findings: list[Finding], healthy: Say) -> tuple[Status, Say]:
    """The worst status of the findings, and what they say (or `healthy` if nothing)."""
    if not findings:
        return Status.OK, healthy
    status = max((s for s, _ in findings), key=lambda s: s.severity)
    return status, Say.join([say for s, say in findings if s is not Status.OK] or
                            [say for _, say in findings])


def threshold(value: float, warning: float, critical: float) -> Status:
    """Higher is worse; a value must exceed a threshold to reach it."""
    if value > critical:
        return Status.CRITICAL
    if value > warning:
        return Status.WARNING
    return Status.OK
