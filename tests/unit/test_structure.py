"""The house rules of the layout (README, "Layout"): folders depend one way, no two files
import each other in a ring, and the wheel carries everything under `vigil.` alone."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Where each folder installs (pyproject.toml, [tool.setuptools.package-dir]).
FOLDERS = {"vigil": "vigil", "checks": "vigil.checks", "alerting": "vigil.alerting",
           "remediations": "vigil.remediations"}
KERNEL = {f"vigil.{m}" for m in ("domain", "model", "result", "runbook", "store", "keys", "files",
                                 "status_log", "paths", "clock", "errors", "i18n", "lease",
                                 "secrets", "zabbix.api", "identity", "accounts", "links")}
SHELL = ("vigil.inventory", "vigil.daemon", "vigil.systemd", "vigil.spool", "vigil.lab",
         "vigil.zabbix",
         "vigil.cli", "vigil.console",
         "vigil.__main__")
# Each layer and the layers it may import (besides itself and the kernel).
LAYERS = {
    "kernel": set(),
    "checks": set(),
    "delivery": set(),
    "vouchers": set(),
    "alerting": {"delivery"},
    "remediations": {"checks", "delivery", "alerting"},
    "shell": {"checks", "delivery", "vouchers", "alerting", "remediations", "shell"},
}


def layer(module: str) -> str:
    if module in KERNEL or module == "vigil":
        return "kernel"
    if module.startswith(SHELL):
        return "shell"
    for name, prefix in (("vouchers", "vigil.remediations.vouchers"),
                         ("checks", "vigil.checks"), ("delivery", "vigil.delivery"),
                         ("alerting", "vigil.alerting"), ("remediations", "vigil.remediations")):
        if module == prefix or module.startswith(prefix + "."):
            return name
    raise AssertionError(f"{module}: in no layer; add it to the README's layout and here")


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The Vigil modules a file imports, at any depth (a function's import counts)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out |= {n for n in names if n in known}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imports(p, set(found)) - {m} for m, p in found.items()}


def test_folders_depend_one_way() -> None:
    wrong = []
    for module, targets in graph().items():
        mine = layer(module)
        allowed = LAYERS[mine] | {mine, "kernel"}
        for target in targets:
            # a package's __init__ is imported on the way to its modules: not a dependency
            if target in ("vigil", "vigil.remediations") and target != module:
                continue
            if layer(target) not in allowed:
                wrong.append(f"{module} ({mine}) imports {target} ({layer(target)})")
    assert wrong == []


def test_no_two_files_import_each_other_in_a_ring() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    rings: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            ring = []
            while True:
                top = stack.pop()
                ring.append(top)
                if top == node:
                    break
            if len(ring) > 1:
                rings.append(sorted(ring))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert rings == []


def test_every_package_folder_is_in_the_wheel() -> None:
    """A folder of modules missing from pyproject's package list is missing installed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    packages = {m for m, p in modules().items() if p.name == "__init__.py"}
    assert packages <= listed


def test_every_import_of_vigil_names_something_that_exists() -> None:
    """Imports inside functions run only when a command does: a stale one would reach a
    user as an error; here it fails first."""
    import importlib

    missing = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    node.module.split(".")[0] == "vigil":
                try:
                    target = importlib.import_module(node.module)
                except ImportError:
                    missing.append(f"{module}: {node.module}")
                    continue
                missing += [f"{module}: {node.module}.{a.name}" for a in node.names
                            if not hasattr(target, a.name) and not _is_module(
                                f"{node.module}.{a.name}")]
            elif isinstance(node, ast.Import):
                missing += [f"{module}: {a.name}" for a in node.names
                            if a.name.split(".")[0] == "vigil" and not _is_module(a.name)]
    assert missing == []


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
