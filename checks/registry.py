"""Probe kinds by name. A new kind is one module and one line here.

A kind's module is imported when a check of that kind is first bound or run: each pulls in
its own client library (paramiko, pika, cryptography…), and a command that needs none of
them should not wait for them all."""

from __future__ import annotations

import importlib

from vigil.checks.base import Probe

# kind: (module in vigil.checks, class)
KINDS: dict[str, tuple[str, str]] = {
    "host": ("host", "HostProbe"), "tcp": ("tcp", "TcpProbe"),
    "backups": ("backups", "BackupsProbe"), "links": ("links", "LinksProbe"),
    "power": ("power", "PowerProbe"), "dbpair": ("dbpair", "DbPairProbe"),
    "ca": ("ca", "CaProbe"), "mq": ("mq", "MqProbe"), "http": ("http", "HttpProbe"),
    "zabbix": ("zabbix", "ZabbixProbe"),
}
PROBES: dict[str, Probe] = {}  # the probes made so far, by kind


def known_kinds() -> list[str]:
    return sorted(KINDS.keys() | PROBES.keys())


def probe_for(kind: str) -> Probe:
    if kind not in PROBES:
        module, name = KINDS[kind]
        PROBES[kind] = getattr(importlib.import_module(f"vigil.checks.{module}"), name)()
    return PROBES[kind]
