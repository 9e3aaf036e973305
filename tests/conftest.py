"""Shared fixtures: run the real `vigil` command in a subprocess, copy inventories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Root acting for a contact in tests whose subject is not identity (vigil.cli.identity).
OVERRIDE = ("--override-identity", "--reason", "test run")


@dataclass
class Run:
    code: int
    out: str
    err: str


VigilRunner = Callable[..., Run]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def vigil(store_path: Path) -> VigilRunner:
    """Run `vigil ARGS` as a user would; the store defaults to a fresh temporary SQLite file."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            input: str | None = None) -> Run:
        full_env = {**os.environ, "VIGIL_STORE": str(store_path), "COLUMNS": "200",
                    **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "vigil", *args], cwd=ROOT,
                              capture_output=True, text=True, env=full_env, timeout=timeout,
                              input=input, stdin=None if input is not None else
                              subprocess.DEVNULL)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A private copy of inventory/demo to break."""
    dest = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory" / "demo", dest)
    return dest
