"""What every lab component offers: up, down and status, all idempotent."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lab_dir() -> Path:
    """Where the lab keeps data, PIDs and logs: $VIGIL_LAB_DIR, else .lab/ in the repo."""
    path = Path(os.environ.get("VIGIL_LAB_DIR") or REPO / ".lab")
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)  # postgres, nut and rabbitmq users must traverse it
    return path


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
