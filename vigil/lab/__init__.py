"""The local lab of real components that the integration tests run against.

`vigil lab up` starts them (idempotent, with readiness checks); `vigil lab down` stops
only what `up` started, by the PIDs it recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from vigil.lab.base import Component, Health, lab_dir
from vigil.lab.consumers import Consumers
from vigil.lab.mq import RabbitMQ
from vigil.lab.net import LabNetwork
from vigil.lab.nut import NutServer
from vigil.lab.pg import PostgresPair
from vigil.lab.pki import Pki
from vigil.lab.procs import LabError
from vigil.lab.zabbix import Zabbix

COMPONENTS: dict[str, type[Component]] = {
    "pg": PostgresPair, "rabbitmq": RabbitMQ, "consumers": Consumers, "nut": NutServer,
    "pki": Pki, "net": LabNetwork, "zabbix": Zabbix,  # after net: its agent is on lab-app1
}

__all__ = ["COMPONENTS", "Health", "LabError", "component", "down", "status", "up"]


def component(name: str) -> Component:
    return COMPONENTS[name](lab_dir())


def _selected(names: list[str] | None) -> list[str]:
    unknown = set(names or []) - set(COMPONENTS)
    if unknown:
        raise LabError(f"unknown lab component(s): {', '.join(sorted(unknown))} "
                       f"(known: {', '.join(COMPONENTS)})")
    return names or list(COMPONENTS)


def up(names: list[str] | None = None, progress: Callable[[str], None] = print) -> None:
    for name in _selected(names):
        progress(f"starting {name}")
        component(name).up()


def down(names: list[str] | None = None, progress: Callable[[str], None] = print) -> None:
    for name in reversed(_selected(names)):
        progress(f"stopping {name}")
        component(name).down()


def status(names: list[str] | None = None) -> list[Health]:
    return [h for name in _selected(names) for h in component(name).status()]
