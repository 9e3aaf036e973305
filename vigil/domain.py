"""Names from the emergency plan, shared by every room of Vigil."""

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
