"""Tell systemd how the daemon is doing (sd_notify(3)): ready, alive, stopping.

The protocol is one datagram on the AF_UNIX socket named by $NOTIFY_SOCKET ("@" = Linux
abstract namespace); written here in a few lines because the bindings (systemd-python)
need libsystemd's headers and a compiler on the monitoring server. Outside systemd every
call does nothing.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is for: not a child we started.
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and mine else None

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.sendto(message.encode(), self.address)
            except OSError:
                return False  # systemd gone (shutdown): nothing to tell
        return True

    def ready(self, status: str) -> bool:
        return self.send(f"READY=1\nSTATUS={status}")

    def alive(self) -> bool:
        return self.watchdog_s is not None and self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")
