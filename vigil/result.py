"""The outcome of one check against one target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from vigil.domain import FaultClass

Metric = float | int | str | bool | None


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        """Nagios plugin convention, so Vigil can serve as an external check."""
        return _EXIT[self]

    @property
    def severity(self) -> int:
        """Order for 'worst of': critical outranks unknown, which outranks warning."""
        return _SEVERITY[self]


_EXIT = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}
_SEVERITY = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


@dataclass(frozen=True)
class Say:
    """What a probe tells an operator, in English and Chinese."""

    en: str
    zh: str

    @staticmethod
    def join(parts: list[Say]) -> Say:
        return Say("; ".join(p.en for p in parts), "；".join(p.zh for p in parts))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Result(BaseModel):
    """One observation. `check` is unique in an inventory; `target` is where it looked."""

    check: str
    kind: str
    system: str
    target: str
    fault_class: FaultClass
    status: Status
    message: str  # English: stable for logs, scripts and grep
    message_zh: str = ""
    metrics: dict[str, Metric] = Field(default_factory=dict)
    observed_at: datetime = Field(default_factory=utcnow)
    # When the fault began by its source's own clock (a Zabbix problem's), if not at the
    # first failing observation: an incident's onset, and so its ladder, start there.
    since: datetime | None = None
    duration_s: float = 0.0

    def text(self, lang: str = "zh") -> str:
        return self.message_zh if lang == "zh" and self.message_zh else self.message

    @property
    def key(self) -> str:
        """Identity of the check across runs (status changes are tracked per key)."""
        return f"{self.check}@{self.target}"

    @staticmethod
    def check_of(key: str) -> str:
        """The check's name in a `key`."""
        return key.split("@", 1)[0]
