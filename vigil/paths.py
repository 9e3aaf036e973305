"""Where Vigil's files are, resolved in one place: the package's own data (the runbook,
the clause list, the embedded demo inventory travel with the code) and the Ansible
project the executor runs (`playbooks/`, `roles/`, `ansible.cfg`), which is the site's,
not the package's."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PROJECT_ENV = "VIGIL_PROJECT_DIR"
PROJECT_VAR = "vigil_project_dir"


class ProjectDirError(Exception):
    """No usable Ansible project folder; the message names the setting to change."""


def checkout() -> Path | None:
    """The source checkout this code runs from (an editable install), else None."""
    root = PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "playbooks").is_dir():
        return root
    return None


def demo_inventory() -> Path:
    """The embedded default inventory: the monitoring server watching itself."""
    root = checkout()
    return root / "inventory" / "demo" if root else PACKAGE / "demo"


def project_dir(option: str | Path | None = None, inventory_value: str | None = None,
                inventory_path: str | Path | None = None) -> Path:
    """The Ansible project: `--project-dir`, else $VIGIL_PROJECT_DIR, else the
    inventory's `vigil_project_dir` (relative to the inventory), else the checkout."""
    base = Path(inventory_path or ".").resolve()
    base = base if base.is_dir() else base.parent
    candidates = ((option, "--project-dir", Path.cwd()),
                  (os.environ.get(PROJECT_ENV), PROJECT_ENV, Path.cwd()),
                  (inventory_value, PROJECT_VAR, base))
    for value, setting, relative_to in candidates:
        if value:
            path = (relative_to / Path(value).expanduser()).resolve()
            if not (path / "playbooks").is_dir():
                raise ProjectDirError(f"{setting}={value}: {path} has no playbooks/ folder "
                                      f"(the Ansible project Vigil runs)")
            return path
    root = checkout()
    if root is None:
        raise ProjectDirError(f"no Ansible project to run: set --project-dir, {PROJECT_ENV} "
                              f"or the inventory's {PROJECT_VAR} to a folder with "
                              f"playbooks/ and roles/")
    return root
