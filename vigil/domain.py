"""Names from the emergency plan, shared by every room of Vigil."""

from __future__ import annotations

from enum import StrEnum


class FaultClass(StrEnum):
    """The plan's fault classes (P4.3.1-P4.3.7)."""

    INFRASTRUCTURE = "infrastructure"  # P4.3.1 lines, hardware, external power
    DATABASE = "database"  # P4.3.2
    PERIPHERAL = "peripheral"  # P4.3.3
    CORE = "core"  # P4.3.4 the payment system's electronic payment function
    VOUCHER_LIBRARY = "voucher_library"  # P4.3.5 电子凭证库
    CA_SEAL = "ca_seal"  # P4.3.6 CA system and electronic seal service
    MQ_NETWORK = "mq_network"  # P4.3.7 MQ middleware or network communication

    @property
    def clause(self) -> str:
        return _CLAUSE[self]


_CLAUSE = {
    FaultClass.INFRASTRUCTURE: "P4.3.1",
    FaultClass.DATABASE: "P4.3.2",
    FaultClass.PERIPHERAL: "P4.3.3",
    FaultClass.CORE: "P4.3.4",
    FaultClass.VOUCHER_LIBRARY: "P4.3.5",
    FaultClass.CA_SEAL: "P4.3.6",
    FaultClass.MQ_NETWORK: "P4.3.7",
}


class Level(StrEnum):
    """The rungs of the plan's ladder (P4.1), in order of seriousness: every fault is
    level IV at onset, confirmed after 4 hours, III after 24 hours, II and I after 2 and
    5 working days. "IV confirmed" is level IV for the plan's steps."""

    IV = "IV"
    IV_CONFIRMED = "IV+"
    III = "III"
    II = "II"
    I = "I"  # noqa: E741 (the plan's name)

    @property
    def rank(self) -> int:
        """0 for IV, up to 4 for I: higher is more serious."""
        return list(Level).index(self)

    @property
    def plan_level(self) -> Level:
        """The level whose steps the plan gives (IV confirmed is IV)."""
        return Level.IV if self is Level.IV_CONFIRMED else self

    @property
    def up_to(self) -> list[Level]:
        """The plan's levels reached on the way here, lowest first."""
        return [lv for lv in PLAN_LEVELS if lv.rank <= self.rank]

    def text(self, lang: str) -> str:
        return _LEVEL_NAMES[self][1 if lang == "en" else 0]


_LEVEL_NAMES = {
    Level.IV: ("四级", "level IV"),
    Level.IV_CONFIRMED: ("四级（已持续4小时）", "level IV (confirmed, 4 h)"),
    Level.III: ("三级", "level III"),
    Level.II: ("二级", "level II"),
    Level.I: ("一级", "level I"),
}
PLAN_LEVELS = (Level.IV, Level.III, Level.II, Level.I)  # the levels the plan gives steps for


class PartyKind(StrEnum):
    """Who takes part in an incident (P2)."""

    FINANCE_BUREAU = "finance_bureau"
    CENTRAL_BANK_BRANCH = "central_bank_branch"
    AGENT_BANK = "agent_bank"
    PAYROLL_BANK = "payroll_bank"
    FISCAL_ACCOUNT_BANK = "fiscal_account_bank"
    VENDOR = "vendor"
    SUPERVISOR = "supervisor"


class Role(StrEnum):
    """The roles a contact can hold in the plan (P2.1, P2.2, P4.3.3(4))."""

    LEADERSHIP_GROUP = "leadership_group"  # 应急领导小组
    IMPLEMENTATION_TEAM = "implementation_team"  # 应急实施小组
    ONSITE_TECHNICIAN = "onsite_technician"  # 现场技术人员
    VENDOR = "vendor"  # 厂商技术支持
    SUPERVISOR = "supervisor"  # 第三方监理
