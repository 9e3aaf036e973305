"""Probe kinds by name. A new kind is one module and one line here."""

from __future__ import annotations

from vigil.checks.backups import BackupsProbe
from vigil.checks.base import Probe
from vigil.checks.ca import CaProbe
from vigil.checks.dbpair import DbPairProbe
from vigil.checks.host import HostProbe
from vigil.checks.http import HttpProbe
from vigil.checks.links import LinksProbe
from vigil.checks.mq import MqProbe
from vigil.checks.power import PowerProbe
from vigil.checks.tcp import TcpProbe
from vigil.checks.zabbix import ZabbixProbe

PROBES: dict[str, Probe] = {p.kind: p for p in (
    HostProbe(), TcpProbe(), BackupsProbe(), LinksProbe(), PowerProbe(), DbPairProbe(), CaProbe(),
    MqProbe(), HttpProbe(), ZabbixProbe(),
)}


def known_kinds() -> list[str]:
    return sorted(PROBES)


def probe_for(kind: str) -> Probe:
    return PROBES[kind]
