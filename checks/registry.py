"""Probe kinds by name. A new kind is one module and one line here."""

from __future__ import annotations

from checks.backups import BackupsProbe
from checks.base import Probe
from checks.ca import CaProbe
from checks.dbpair import DbPairProbe
from checks.host import HostProbe
from checks.http import HttpProbe
from checks.links import LinksProbe
from checks.mq import MqProbe
from checks.power import PowerProbe
from checks.tcp import TcpProbe

PROBES: dict[str, Probe] = {p.kind: p for p in (
    HostProbe(), TcpProbe(), BackupsProbe(), LinksProbe(), PowerProbe(), DbPairProbe(), CaProbe(),
    MqProbe(), HttpProbe(),
)}


def known_kinds() -> list[str]:
    return sorted(PROBES)


def probe_for(kind: str) -> Probe:
    return PROBES[kind]
