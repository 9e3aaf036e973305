"""What implements each clause of the plan: runbook steps, checks, code and tests."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vigil.domain import FaultClass
from vigil.model import Inventory
from vigil.runbook import LEVELS, Runbook

CLAUSES = Path(__file__).with_name("clauses.yml")
# Code paths in clauses.yml are the repository's folders; each is where its package is,
# in a checkout or installed (without importing it).
_PACKAGED = {"vigil": "vigil", "checks": "vigil.checks", "alerting": "vigil.alerting",
             "remediations": "vigil.remediations"}


def _where(path: str, project: Path | None) -> Path | None:
    top, _, rest = path.partition("/")
    if top in _PACKAGED:
        spec = importlib.util.find_spec(_PACKAGED[top])
        assert spec is not None and spec.submodule_search_locations
        return Path(next(iter(spec.submodule_search_locations))) / rest
    return project / path if project else None


@dataclass
class Coverage:
    clause: str
    zh: str
    en: str
    steps: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)

    @property
    def implemented(self) -> bool:
        return bool(self.steps or self.code)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "implemented": self.implemented}


def _mentions(clause: str) -> re.Pattern[str]:
    # P4.3.1 must not match P4.3.1(2) nor P4.3.10.
    return re.compile(re.escape(clause) + (r"(?![\d(])" if not clause.endswith(")") else ""))


def coverage(runbook: Runbook, inv: Inventory | None,
             project: Path | None = None) -> list[Coverage]:
    """`project`: the Ansible project (roles, and tests in a checkout), when there is one."""
    raw = yaml.safe_load(CLAUSES.read_text(encoding="utf-8"))
    tests = ({str(p.relative_to(project)): p.read_text(encoding="utf-8")
              for p in sorted((project / "tests").rglob("*.py"))} if project else {})
    rows = []
    for item in raw:
        row = Coverage(item["id"], item["zh"], item["en"],
                       code=[c for c in item.get("code", [])
                             if (found := _where(c, project)) and found.exists()])
        for klass in FaultClass:
            for level in LEVELS:
                row.steps += [f"{klass.value}.{level}.{s.id} ({s.kind})"
                              for s in runbook.steps(klass, level) if s.clause == row.clause]
            if inv and row.clause.startswith(klass.clause) and \
                    row.clause[len(klass.clause):][:1] in ("", "("):
                row.checks += [c.name for c in inv.checks if c.fault_class == klass]
        pattern = _mentions(row.clause)
        row.tests = [name for name, text in tests.items()
                     if pattern.search(text)]
        rows.append(row)
    return rows
