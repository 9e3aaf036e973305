"""A command loads what it needs, not what every command needs: each run from a script or
a monitoring agent pays the start-up."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import VigilRunner

PROBE = """
import sys
from vigil.cli import build
app = build(sys.argv[1:])
print(sorted(m for m in ("vigil.cli.check", "vigil.cli.drill", "paramiko", "pika",
                         "argon2", "vigil.checks.dbpair") if m in sys.modules))
"""


def _loaded(*args: str) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def test_a_command_loads_its_own_module_and_no_probe_it_does_not_run() -> None:
    assert _loaded("events", "list") == "[]"
    assert _loaded("--version") == "[]"
    assert _loaded("check", "--json") == "['vigil.cli.check']"


def test_the_root_help_still_lists_every_command(vigil: VigilRunner) -> None:
    for args in (["--help"], ["--help", "check"], []):
        run = vigil(*args)
        assert run.code == 0, run.err
        assert all(f" {name} " in run.out for name in ("check", "drill", "users", "zabbix"))
