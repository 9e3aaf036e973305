"""What every lab component offers: up, down and status, all idempotent."""

from __future__ import annotations

import os
import stat
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from vigil.paths import checkout


def lab_dir() -> Path:
    """Where the lab keeps data, PIDs and logs: $VIGIL_LAB_DIR, else .lab/ in the
    checkout (or in the current folder, installed)."""
    path = Path(os.environ.get("VIGIL_LAB_DIR") or (checkout() or Path.cwd()) / ".lab")
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)  # postgres, nut and rabbitmq users must traverse it
    _passable(path)
    return path


def _passable(path: Path) -> None:
    """The services' own users must pass through every folder above the lab too (a clone
    in `mktemp -d` is 0700): search permission only, never reading."""
    for folder in path.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            sys.stderr.write(f"lab: other users may now pass through {folder} (o+x), so the "
                             f"lab's services can reach {path}\n")


@dataclass
class Health:
    name: str
    ok: bool
    detail: str


class Component(ABC):
    name: str

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)

    @abstractmethod
    def up(self) -> None: ...

    @abstractmethod
    def down(self) -> None: ...

    @abstractmethod
    def status(self) -> list[Health]: ...
