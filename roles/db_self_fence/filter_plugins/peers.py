"""`vigil_self_fence_peer`: one (hostvars, name) pair as a peer the self-fence listens for."""

from __future__ import annotations

from typing import Any


def vigil_self_fence_peer(item: tuple[dict[str, Any], str], monitor_port: int,
                          monitor: bool) -> dict[str, Any]:
    hv, name = item
    # the other node's host, at its self-fence's port: not the database's, which a hung
    # PostgreSQL leaves silent while the host is up (a refusal answers as well)
    port = monitor_port if monitor else (hv.get("vigil_self_fence") or {}).get("port", 5440)
    return {"name": name, "address": str(hv.get("ansible_host", name)), "port": int(port)}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"vigil_self_fence_peer": vigil_self_fence_peer}
