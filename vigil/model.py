"""The typed view of an inventory: sites, parties, contacts, systems and their checks.

These models validate what the inventory's `vigil_*` variables say; `vigil.inventory`
loads those variables with ansible-core and turns validation errors into messages that
name the file, the host or group, and the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigil.domain import FaultClass, Level, PartyKind, Role
from vigil.result import Metric, Result, Say, Status
from vigil.runbook import Runbook, load_runbook
from vigil.secrets import Secret, SecretField

Ident = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A name or message in Chinese (the default) and English."""

    zh: str
    en: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain(cls, value: Any) -> Any:
        return {"zh": value} if isinstance(value, str) else value

    def get(self, lang: str = "zh") -> str:
        return self.en if lang == "en" and self.en else self.zh


class Site(Strict):
    id: str = Ident
    name: Text
    timezone: str = "Asia/Shanghai"  # an IANA name: the site's local time on everything
    lang: Literal["zh", "en"] = "zh"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if name not in available_timezones():  # never a path, never an abbreviation
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as "
                             f"Asia/Shanghai)")
        return name


class Party(Strict):
    id: str = Ident
    kind: PartyKind
    name: Text


class Contact(Strict):
    id: str = Ident
    name: str
    party: str
    roles: list[Role] = Field(min_length=1)
    channels: list[SecretField] = []  # apprise URLs; they often carry credentials
    lang: Literal["zh", "en"] = "zh"
    # The operating-system account that is this person on the monitoring server: the CLI
    # acts as them without asking for a password (vigil.cli.identity).
    unix_user: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_.-]*$")


class CheckIn(Strict):
    kind: str
    name: str | None = None
    params: dict[str, Any] = {}
    interval: float | None = Field(None, gt=0, description="seconds between runs")
    timeout: float | None = Field(None, gt=0, description="seconds before it is unknown")


class SystemIn(Strict):
    id: str = Ident
    name: Text
    fault_class: FaultClass
    party: str | None = None  # default: the host's vigil_party
    # Contacts who own it (its vendor, its on-site technician): told of its faults from
    # level IV on, and may tick off its incidents' tasks.
    owners: list[str] = []
    depends_on: list[str] = []
    checks: list[CheckIn] = []


class LevelPolicy(Strict):
    """Who is told when an incident reaches a mark of the ladder (P4.1, P4.2, P2)."""

    roles: list[Role] = []
    affected_party: bool = False  # every contact of the party whose system failed
    all_parties: bool = False  # implementation-team contacts of every party
    renotify_minutes: float | None = Field(None, gt=0)  # until acknowledged


def _default_levels() -> dict[Level, LevelPolicy]:
    base = [Role.ONSITE_TECHNICIAN, Role.IMPLEMENTATION_TEAM]
    return {
        Level.IV: LevelPolicy(roles=base, affected_party=True),
        Level.IV_CONFIRMED: LevelPolicy(roles=base, affected_party=True),
        Level.III: LevelPolicy(roles=[*base, Role.LEADERSHIP_GROUP], affected_party=True),
        Level.II: LevelPolicy(roles=[*base, Role.LEADERSHIP_GROUP, Role.VENDOR],
                          affected_party=True, all_parties=True),
        Level.I: LevelPolicy(roles=[*base, Role.LEADERSHIP_GROUP, Role.VENDOR, Role.SUPERVISOR],
                         affected_party=True, all_parties=True),
    }


class Escalation(Strict):
    """The escalation policy: each mark adds to who was told at the marks below it."""

    open_after: int = Field(2, ge=1, description="consecutive failing results to open")
    recover_after: int = Field(2, ge=1, description="consecutive passing results to recover")
    flap_window: int = Field(10, ge=4, description="recent results looked at for flapping")
    flap_changes: int = Field(5, ge=2, description="status changes in the window = flapping")
    renotify_minutes: float = Field(60, gt=0)
    levels: dict[Level, LevelPolicy] = Field(default_factory=_default_levels)


class CalendarVars(Strict):
    """Holidays and working days for years the chinese-calendar package does not know."""

    holidays: list[dt.date] = []
    workdays: list[dt.date] = []
    complete_years: list[int] = []


class LadderVars(Strict):
    """The ladder's thresholds (P4.1), as the plan sets them unless a site changes them."""

    # Bounded: the plan's ladder spans days; a threshold of years is a typo, and the
    # working-day count walks the calendar one day at a time.
    iv_confirmed_hours: float = Field(4, gt=0, le=24 * 30)
    iii_hours: float = Field(24, gt=0, le=24 * 90)
    ii_working_days: int = Field(2, ge=1, le=60)
    i_working_days: int = Field(5, ge=1, le=120)


class CheckDefaults(Strict):
    """For checks that do not say: how often and how long."""

    interval: float = Field(60, gt=0)
    timeout: float = Field(10, gt=0)


class VoucherLibrary(Strict):
    """Where a party's vouchers can be read: its voucher-library database or an export."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    party: str
    source: Literal["sql", "file"]
    dsn: SecretField | None = None  # sql: a libpq connection string (may hold a password)
    query: str | None = None  # sql: canonical columns, %(since)s / %(until)s, ORDER BY number
    path: str | None = None  # file: CSV or JSON lines, sorted by number
    encoding: str | None = None  # file: e.g. gb18030; default UTF-8 (a BOM is honoured)

    @model_validator(mode="after")
    def _complete(self) -> VoucherLibrary:
        if self.source == "sql" and not (self.dsn and self.query):
            raise ValueError("a sql source needs dsn and query")
        if self.source == "file" and not self.path:
            raise ValueError("a file source needs path")
        return self


class RunbookVars(Strict):
    """A site's changes to the runbook (P6) and how its executor may act."""

    observe_only: bool = False  # record what would run; run nothing
    overrides: dict[str, dict[str, Any]] = {}  # "class.level.id" -> fields to change
    add: dict[str, dict[str, list[dict[str, Any]]]] = {}  # class -> level -> more steps


class Heartbeat(Strict):
    """The leader's heartbeat to a receiver outside (a dead man's switch): silence there
    means no daemon leads."""

    url: SecretField  # an apprise URL (a webhook, …); it may carry credentials
    interval_s: float = Field(60, ge=5, le=3600)


ZABBIX_SEVERITIES = ("not_classified", "information", "warning", "average", "high",
                     "disaster")


def zabbix_severity(name: str) -> str:
    """A Zabbix severity's name, checked (its number is its index in ZABBIX_SEVERITIES)."""
    if name not in ZABBIX_SEVERITIES:
        raise ValueError(f"unknown Zabbix severity {name!r} (one of "
                         f"{', '.join(ZABBIX_SEVERITIES)})")
    return name


class ZabbixVars(Strict):
    """The county's Zabbix (vigil.zabbix): where its API is, who Vigil logs in as, and
    which Zabbix severity each level of the plan's ladder is shown with."""

    url: str = Field(pattern=r"^https?://")  # the frontend, or its api_jsonrpc.php
    # A user and password (6.0), or an API token (5.4 on; 6.4 sends it in a header):
    # both from vault.
    user: str | None = None
    password: SecretField | None = None
    token: SecretField | None = None
    verify_tls: bool = True
    # The server's trapper, host:port: with it, the leading `vigil watch` sends each cycle
    # there (vigil.zabbix.push).
    trapper: str | None = Field(None, pattern=r"^[^\s:]+(:\d{1,5})?$")
    # How long the trapper may stay unreachable before the implementation team is told.
    tell_after_minutes: float = Field(10, gt=0)
    # Zabbix user name -> Vigil contact id: their acknowledgements in the Zabbix frontend
    # are that contact's in Vigil (vigil.zabbix.bridge).
    users: dict[str, str] = {}
    severities: dict[Level, str] = {Level.IV: "average", Level.IV_CONFIRMED: "average",
                                    Level.III: "high", Level.II: "disaster",
                                    Level.I: "disaster"}

    @field_validator("severities")
    @classmethod
    def _known(cls, value: dict[Level, str]) -> dict[Level, str]:
        for name in sorted(value.values()):
            zabbix_severity(name)
        return value

    @model_validator(mode="after")
    def _login(self) -> ZabbixVars:
        if self.token is None and (self.user is None or self.password is None):
            raise ValueError("give user and password, or token")
        return self

    @property
    def who(self) -> str:
        """Who Vigil is at Zabbix, for messages."""
        return repr(self.user) if self.token is None else "an API token"


class ConsoleVars(Strict):
    """The duty console (`vigil serve`): where people reach it, and how it is served."""

    url: str | None = Field(None, pattern=r"^https?://")  # base of the links in messages
    listen: str = "127.0.0.1:8080"
    tls_cert: str | None = None
    tls_key: str | None = None
    # Addresses of the reverse proxies whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: list[str] = []
    link_hours: float = Field(24, gt=0, le=24 * 14)  # how long a message's link works
    session_hours: float = Field(12, gt=0, le=24 * 7)
    lock_after: int = Field(5, ge=1, le=100)  # failed sign-ins before the account locks
    lock_minutes: float = Field(15, gt=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> ConsoleVars:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        return self


class SiteVars(BaseModel):
    """Variables every host sees (group_vars/all)."""

    model_config = ConfigDict(extra="ignore")
    vigil_site: Site
    vigil_parties: list[Party] = Field(min_length=1)
    vigil_contacts: list[Contact] = []
    vigil_escalation: Escalation = Escalation()
    vigil_calendar: CalendarVars = CalendarVars()
    vigil_ladder: LadderVars = LadderVars()
    vigil_check_defaults: CheckDefaults = CheckDefaults()
    vigil_voucher_libraries: list[VoucherLibrary] = []
    vigil_runbook: RunbookVars = RunbookVars()
    vigil_project_dir: str | None = None  # the Ansible project Vigil runs (vigil.paths)
    vigil_heartbeat: Heartbeat | None = None
    vigil_zabbix: ZabbixVars | None = None
    vigil_console: ConsoleVars = ConsoleVars()
    # P3.2.3: `vigil status` warns when a fault class of the site's systems has not been
    # drilled for this long.
    vigil_drill_interval_days: int = Field(182, ge=1, le=3660)

    @model_validator(mode="after")
    def _zabbix_users_are_contacts(self) -> SiteVars:
        known = {c.id for c in self.vigil_contacts}
        for user, contact in (self.vigil_zabbix.users if self.vigil_zabbix else {}).items():
            if contact not in known:
                raise ValueError(f"vigil_zabbix.users: Zabbix user {user!r} maps to unknown "
                                 f"contact {contact!r}")
        return self

    @model_validator(mode="after")
    def _one_person_per_unix_user(self) -> SiteVars:
        seen: dict[str, str] = {}
        for c in self.vigil_contacts:
            if c.unix_user and c.unix_user in seen:
                raise ValueError(f"vigil_contacts: unix_user {c.unix_user!r} is both "
                                 f"{seen[c.unix_user]!r} and {c.id!r}")
            if c.unix_user:
                seen[c.unix_user] = c.id
        return self


class FenceDevice(Strict):
    """How to power a host off from outside it: its BMC (iLO, iDRAC, IMM) through a
    ClusterLabs fence agent. Certainty that an old primary takes no more writes."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    agent: Literal["fence_ipmilan"] = "fence_ipmilan"
    ip: str
    port: int = Field(623, ge=1, le=65535)
    username: str
    password: SecretField
    lanplus: bool = False
    timeout_s: float = Field(30, gt=0, le=300)


class SelfFence(Strict):
    """The self-fence deployed on a database host (`roles/db_self_fence`, which reads its
    settings here): the host's primary stops taking writes once it has heard neither its
    standby nor the monitoring server for `limit_s`. Without a BMC, the monitoring server
    promotes the standby only when neither it nor the standby's self-fence (asked on
    `port`, its answer signed with `key`) has heard the primary for `limit_s` +
    `margin_s`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    limit_s: float = Field(4, ge=2, le=300)
    # what the self-fence may take beyond its limit (a round of looks, 0.5 s, and the
    # stop) and the standby's last answer, heard up to a round before the cut: 2 s; the
    # rest is for the unforeseen
    margin_s: float = Field(4, ge=2, le=300)
    port: int = Field(5440, ge=1, le=65535)  # where it tells what it hears
    # The pair's shared key (16 bytes or more): the standby's answer is signed with it
    # (HMAC over Vigil's nonce), so a forged or replayed one cannot get a standby promoted.
    # Without it Vigil never promotes on the self-fence's word.
    key: SecretField | None = None


class HostVars(BaseModel):
    """Variables of one host (the ansible_* ones as Ansible itself reads them)."""

    model_config = ConfigDict(extra="ignore")
    ansible_host: str | None = None
    ansible_connection: str | None = None
    ansible_port: int | None = Field(None, ge=1, le=65535)
    ansible_user: str | None = None
    ansible_ssh_private_key_file: str | None = None
    ansible_password: SecretField | None = None
    vigil_known_hosts: str = "~/.ssh/known_hosts"
    vigil_party: str | None = None
    vigil_systems: list[SystemIn] = []
    vigil_pg_port: int | None = Field(None, ge=1, le=65535)  # a PostgreSQL node's port
    vigil_fence: FenceDevice | None = None
    vigil_self_fence: SelfFence | None = None


class Host(Strict):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    address: str
    party: str | None
    groups: tuple[str, ...]
    ssh: SshTarget | None = None  # None for ansible_connection=local
    pg_port: int | None = None  # where the host runs PostgreSQL (first aid needs it)
    fence: FenceDevice | None = None  # how to power it off (first aid fences with it)
    self_fence: SelfFence | None = None  # its primary stops itself when cut off


class System(Strict):
    id: str
    name: Text
    fault_class: FaultClass
    party: str
    host: str
    depends_on: tuple[str, ...]
    checks: tuple[str, ...]
    owners: tuple[str, ...] = ()


class SshTarget(BaseModel):
    """How to reach a host over SSH, from its Ansible variables."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    password: Secret | None = None
    known_hosts: str = "~/.ssh/known_hosts"

    @property
    def label(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


class CheckSpec(BaseModel):
    """One check of one system, as the inventory defines it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    kind: str
    system: str
    fault_class: FaultClass
    host: str  # the inventory host the system lives on
    address: str  # where to reach it: ansible_host, else the host name
    ssh: SshTarget | None = None  # how to run commands there, if not local
    params: Any = None  # the probe's validated ProbeParams
    interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)

    def result(self, status: Status, message: Say | str, target: str | None = None,
               metrics: dict[str, Metric] | None = None, **more: Metric) -> Result:
        say = message if isinstance(message, Say) else Say(message, message)
        return Result(
            check=self.name,
            kind=self.kind,
            system=self.system,
            target=target or self.address,
            fault_class=self.fault_class,
            status=status,
            message=say.en,
            message_zh=say.zh,
            metrics={**(metrics or {}), **more},
        )


class Inventory(BaseModel):
    """A validated inventory. Secrets stay `Secret` objects; printing one shows its origin."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: str
    site: Site
    parties: dict[str, Party]
    contacts: list[Contact]
    hosts: dict[str, Host]
    systems: dict[str, System]
    checks: list[CheckSpec]
    escalation: Escalation = Escalation()
    calendar: CalendarVars = CalendarVars()
    ladder: LadderVars = LadderVars()
    voucher_libraries: list[VoucherLibrary] = []
    runbook: RunbookVars = RunbookVars()
    site_runbook: Runbook = Field(default_factory=load_runbook)  # with the site's changes
    project_dir: str | None = None
    heartbeat: Heartbeat | None = None
    zabbix: ZabbixVars | None = None
    console: ConsoleVars = ConsoleVars()
    drill_interval_days: int = 182
    warnings: list[str] = []

    def limit(self, pattern: str | None) -> list[CheckSpec]:
        """Checks whose host, group, system or check name matches a glob pattern."""
        if not pattern:
            return list(self.checks)
        from fnmatch import fnmatchcase

        pats = [p.strip() for p in pattern.split(",") if p.strip()]

        def hit(c: CheckSpec) -> bool:
            names = {c.host, c.system, c.name, *self.hosts[c.host].groups}
            return any(fnmatchcase(n, p) for p in pats for n in names)

        return [c for c in self.checks if hit(c)]

    def contacts_with(self, role: Role) -> list[Contact]:
        return [c for c in self.contacts if role in c.roles]

    def contact(self, person: str) -> Contact:
        """The contact whose id is `person`: whoever acts must be someone the plan knows."""
        for c in self.contacts:
            if c.id == person:
                return c
        raise PermissionError(f"{person!r} is not a contact in the inventory")

    def contact_of_unix_user(self, user: str) -> Contact | None:
        return next((c for c in self.contacts if c.unix_user == user), None)
