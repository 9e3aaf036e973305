#!/usr/bin/python
"""Ansible module: make the default route go via a gateway on an interface.

Idempotent, supports check mode and diff, so a dry run shows the route it would move.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: default_route
short_description: Point the default route at a gateway on an interface
options:
  gateway: {description: Next hop, type: str, required: true}
  interface: {description: Outgoing interface, type: str, required: true}
  metric: {description: Route metric, type: int, required: false}
"""


def current(module: AnsibleModule) -> str:
    rc, out, err = module.run_command(["ip", "-o", "route", "show", "default"])
    if rc != 0:
        module.fail_json(msg=f"cannot read the routing table: {err.strip()}")
    return " ".join(out.split())


def main() -> None:
    module = AnsibleModule(
        argument_spec={"gateway": {"type": "str", "required": True},
                       "interface": {"type": "str", "required": True},
                       "metric": {"type": "int", "required": False}},
        supports_check_mode=True)
    gw, dev = module.params["gateway"], module.params["interface"]
    before = current(module)
    wanted = f"default via {gw} dev {dev}"
    changed = not before.startswith(wanted) or before.count("default") > 1
    result = {"changed": changed, "before": before, "after": wanted if changed else before,
              "diff": {"before": before + "\n", "after": wanted + "\n"}}
    if changed and not module.check_mode:
        cmd = ["ip", "route", "replace", "default", "via", gw, "dev", dev]
        if module.params["metric"] is not None:
            cmd += ["metric", str(module.params["metric"])]
        rc, _out, err = module.run_command(cmd)
        if rc != 0:
            module.fail_json(msg=f"cannot move the default route: {err.strip()}", **result)
        result["after"] = current(module)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
