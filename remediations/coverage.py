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
    """A clause and what carries it out. `state`: covered (something acts on it and a
    test exercises it), untested (it acts, no test does), people (all its steps are
    people's work, tracked as tasks), missing (nothing)."""

    clause: str
    zh: str
    en: str
    steps: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    acting: bool = False  # a step that is not people's work, a check, or code

    @property
    def state(self) -> str:
        if self.acting:
            return "covered" if self.tests else "untested"
        return "people" if self.steps else "missing"

    @property
    def implemented(self) -> bool:
        return self.state != "missing"

    def as_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "implemented": self.implemented, "state": self.state}
        del out["acting"]
        return out


def _mentions(names: list[str]) -> re.Pattern[str]:
    """A clause ID or a step's id as a test names it: P4.3 is neither P4.3.1 nor P4.3(2),
    and P4.3.1 is not P4.3.10; a step id is a whole word."""
    parts = [re.escape(n) + (r"(?![\d(]|\.\d)" if n.startswith("P") else r"(?![\w-])")
             for n in names]
    return re.compile(r"(?<![\w.-])(?:" + "|".join(parts) + ")")


def coverage(runbook: Runbook, inv: Inventory | None,
             project: Path | None = None) -> list[Coverage]:
    """`project`: the Ansible project (roles, and tests in a checkout), when there is one.
    Code under tests/ never counts as acting on a clause: a test is not an implementation."""
    raw = yaml.safe_load(CLAUSES.read_text(encoding="utf-8"))
    tests = ({str(p.relative_to(project)): p.read_text(encoding="utf-8")
              for p in sorted((project / "tests").rglob("test_*.py"))} if project else {})
    rows = []
    for item in raw:
        row = Coverage(item["id"], item["zh"], item["en"],
                       code=[c for c in item.get("code", []) if not c.startswith("tests/")
                             and (found := _where(c, project)) and found.exists()])
        named = [row.clause]
        for klass in FaultClass:
            for level in LEVELS:
                for s in runbook.steps(klass, level):
                    if s.clause != row.clause:
                        continue
                    row.steps.append(f"{klass.value}.{level}.{s.id} ({s.kind})")
                    row.acting |= s.kind != "manual"
                    if not re.fullmatch(r"s\d+", s.id):  # a generic id names nothing
                        named.append(s.id)
            if inv and row.clause.startswith(klass.clause) and \
                    row.clause[len(klass.clause):][:1] in ("", "("):
                row.checks += [c.name for c in inv.checks if c.fault_class == klass]
        row.acting |= bool(row.checks or row.code)
        pattern = _mentions(named)
        uses = _imports(row.code)
        row.tests = [name for name, text in tests.items()
                     if pattern.search(text) or (uses and uses.search(text))]
        row.tests += [f"molecule/{c.removeprefix('roles/')}" for c in row.code
                      if project and c.startswith("roles/")
                      and (project / "molecule" / c.removeprefix("roles/")).is_dir()]
        rows.append(row)
    return rows


# Imported by nearly every test: importing them exercises no clause in particular.
_EVERYWHERE = {"vigil/domain.py", "vigil/model.py"}


def _imports(code: list[str]) -> re.Pattern[str] | None:
    """A test that imports a clause's code module exercises it."""
    names = []
    for path in code:
        if not path.endswith(".py") or path in _EVERYWHERE:
            continue
        top, _, rest = path.removesuffix(".py").partition("/")
        module = ".".join([_PACKAGED.get(top, top), *rest.split("/")])
        parent, _, leaf = module.rpartition(".")
        names.append(rf"from {re.escape(module)} import|import {re.escape(module)}\b|"
                     rf"from {re.escape(parent)} import [^\n]*\b{re.escape(leaf)}\b")
    return re.compile("|".join(names)) if names else None
