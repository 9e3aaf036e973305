"""Fencing refuses what IPMI cannot carry before it asks the BMC anything."""

from __future__ import annotations

from tests.receivers import free_port
from vigil.model import FenceDevice
from vigil.remediations.fence import power_off
from vigil.secrets import Secret


def test_a_password_longer_than_ipmi_carries_is_refused_without_asking_the_bmc() -> None:
    device = FenceDevice(ip="127.0.0.1", port=free_port(), username="admin",
                         password=Secret.parse("seventeen-bytes!!"))
    fenced = power_off("lab-db-primary", device)
    assert not fenced.off
    assert fenced.why == "lab-db-primary's vigil_fence.password is longer than IPMI 1.5 " \
                         "carries (16 bytes): not tried"
    assert "seventeen" not in fenced.why
    lanplus = device.model_copy(update={"lanplus": True, "timeout_s": 2})
    assert "not tried" not in power_off("lab-db-primary", lanplus).why  # 20 bytes allowed
