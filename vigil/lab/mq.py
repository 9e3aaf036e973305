"""RabbitMQ with the management plugin on 127.0.0.1 (the MQ of P4.3.1(1), P4.3.7)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.exchange import PARTY_USERS, VHOST, password
from vigil.lab.procs import LabError, alive, port_open, read_pid, run, stop, wait_for

AMQP_PORT = 5672
MGMT_PORT = 15672
PID_FILE = Path("/var/lib/rabbitmq/vigil-lab.pid")  # rabbitmq must be able to write it


class RabbitMQ(Component):
    name = "rabbitmq"

    @property
    def env(self) -> dict[str, str]:
        return {"RABBITMQ_PID_FILE": str(PID_FILE),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),  # .conf is appended
                "RABBITMQ_NODENAME": "rabbit@localhost",
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1"}

    def up(self) -> None:
        if self._pid() and port_open("127.0.0.1", AMQP_PORT):
            return
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{AMQP_PORT}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {MGMT_PORT}\n"
            "loopback_users.guest = true\n"
            # Rates every second instead of every five, so jam tests need not wait long.
            "collect_statistics_interval = 1000\n")
        (self.dir / "epmd-was-running").write_text(
            "yes" if port_open("127.0.0.1", 4369) else "no")
        run(["rabbitmq-plugins", "enable", "--offline", "rabbitmq_management"], env=self.env)
        run(["rabbitmq-server", "-detached"], env=self.env)
        wait_for(lambda: self._pid() is not None, "rabbitmq pid file", timeout=60)
        run(["rabbitmqctl", "wait", "--timeout", "90", str(PID_FILE)], env=self.env,
            timeout=120)
        wait_for(lambda: port_open("127.0.0.1", MGMT_PORT), "rabbitmq management API", 60)
        self._treasury()

    def _treasury(self) -> None:
        """The vhost and one user per party that exchange vouchers over it."""
        ctl = ["rabbitmqctl", "-q"]
        run([*ctl, "add_vhost", VHOST], env=self.env, check=False)
        run([*ctl, "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"], env=self.env)
        for user in PARTY_USERS.values():
            run([*ctl, "add_user", user, password(user)], env=self.env, check=False)
            run([*ctl, "set_permissions", "-p", VHOST, user, ".*", ".*", ".*"], env=self.env)

    def _pid(self) -> int | None:
        pid = read_pid(PID_FILE)
        return pid if alive(pid) else None

    def down(self) -> None:
        pid = self._pid()
        if pid:
            with contextlib.suppress(LabError):
                run(["rabbitmqctl", "stop"], env=self.env, timeout=60)
            stop(pid, "beam", timeout=30)
        marker = self.dir / "epmd-was-running"
        if marker.exists() and marker.read_text() == "no":
            run(["epmd", "-kill"], check=False)
        PID_FILE.unlink(missing_ok=True)

    def status(self) -> list[Health]:
        pid = self._pid()
        amqp = port_open("127.0.0.1", AMQP_PORT)
        mgmt = port_open("127.0.0.1", MGMT_PORT)
        return [Health("rabbitmq", bool(pid) and amqp,
                       f"amqp 127.0.0.1:{AMQP_PORT} pid {pid}" if amqp else "stopped"),
                Health("rabbitmq-management", mgmt,
                       f"http://127.0.0.1:{MGMT_PORT}/api" if mgmt else "stopped")]
