#!/usr/bin/python
"""Ansible module: how a TCP port answers — open, refused, or silent.

wait_for's `state: stopped` takes a silent port (a cut cable, a firewall, a partition)
for a closed one; fencing a primary must not. A refusal (a TCP reset) is the host's own
word that nothing listens; silence proves nothing.
"""

from __future__ import annotations

import errno
import socket
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: port_state
short_description: Tell an open, a refusing and a silent TCP port apart
options:
  host: {type: str, required: true, description: address to connect to}
  port: {type: int, required: true, description: TCP port}
  timeout: {type: float, default: 1.0, description: seconds one connection attempt may take}
  wait_for_closed:
    type: float
    default: 0
    description: seconds to keep trying while the port is open
"""


def probe(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "open"
    except OSError as exc:
        return "refused" if exc.errno == errno.ECONNREFUSED else "silent"


def main() -> None:
    module = AnsibleModule(argument_spec={
        "host": {"type": "str", "required": True}, "port": {"type": "int", "required": True},
        "timeout": {"type": "float", "default": 1.0},
        "wait_for_closed": {"type": "float", "default": 0.0}}, supports_check_mode=True)
    p = module.params
    deadline = time.monotonic() + p["wait_for_closed"]
    state = probe(p["host"], p["port"], p["timeout"])
    while state == "open" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = probe(p["host"], p["port"], p["timeout"])
    module.exit_json(changed=False, state=state)


if __name__ == "__main__":
    main()
