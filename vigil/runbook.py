"""Load `runbook.yml`: the plan's steps per fault class and level, validated, with a
site's own changes (P6: each party may adapt the plan) applied from the inventory."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil.domain import PLAN_LEVELS, FaultClass, Role

RUNBOOK = Path(__file__).with_name("runbook.yml")
# The runbook's sections: the plan's levels, and what follows recovery.
LEVELS = (*(lv.value for lv in PLAN_LEVELS), "recovery")


class Run(BaseModel):
    """What an auto or approved step runs: a playbook of `playbooks/` with variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    playbook: str
    vars: dict[str, Any] = {}
    lock: str | None = None  # one run at a time per lock; default: the playbook
    # A native action taken before the playbook where seconds matter; the playbook then
    # finishes the job (remediations/first_aid.py).
    first_aid: Literal["promote-standby"] | None = None


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = ""  # unique within its class and level; filled in as `s<n>` when absent
    clause: str
    kind: Literal["auto", "approval", "manual", "notify"]
    zh: str
    en: str
    run: Run | None = None
    # After a run: "incident" re-runs the checks that opened the incident; "playbook"
    # trusts the playbook's own verification (e.g. a write on the new primary).
    verify: Literal["incident", "playbook"] = "incident"
    attempts: int = Field(2, ge=1, le=10)  # then people take over, never a retry loop
    timeout_s: float = Field(600, gt=0)
    approvers: list[Role] = [Role.LEADERSHIP_GROUP]
    # P4.3.3(4): one approval from each role, by different people.
    two_person: list[Role] = []
    expires_minutes: float = Field(240, gt=0)
    # Who does a manual step (and may tick it off), besides the system's owners; empty:
    # the implementation team and the affected party's operational staff.
    roles: list[Role] = []
    # Check-name globs: the step applies only when one of them failed in the incident
    # (activating the standby is no remedy when the standby is what failed).
    only_if_failing: list[str] = []
    # "Handle as a core-system fault of the same level" (P4.3.6): that class's steps at
    # this level are planned too.
    as_class: FaultClass | None = None
    enabled: bool = True

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class ClassSteps(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    IV: list[Step]
    III: list[Step]
    II: list[Step]
    I: list[Step]  # noqa: E741 (the plan's name)
    recovery: list[Step] = []


class Routine(BaseModel):
    """People's work the plan asks for on a schedule, not on a fault (P3.2.2: the backup
    business system kept ready): an open task every `every_days`, ticked off with a note
    (`vigil routine done`), each time on record."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    clause: str
    every_days: float = Field(gt=0, le=366)
    roles: list[Role] = [Role.IMPLEMENTATION_TEAM]  # who is told and may tick it off
    zh: str
    en: str

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class Runbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classes: dict[FaultClass, ClassSteps]
    routines: list[Routine] = []

    def steps(self, fault_class: FaultClass, level: str) -> list[Step]:
        steps: list[Step] = getattr(self.classes[fault_class], level)
        return [s for s in steps if s.enabled]

    def step(self, fault_class: FaultClass, level: str, step_id: str) -> Step | None:
        return next((s for s in self.steps(fault_class, level) if s.id == step_id), None)

    def all_steps(self) -> list[Step]:
        return [s for klass in self.classes for level in ("IV", "III", "II", "I", "recovery")
                for s in self.steps(klass, level)]


class RunbookError(Exception):
    pass


def _with_ids(raw: dict[str, Any]) -> dict[str, Any]:
    for levels in (raw.get("classes") or {}).values():
        for steps in (levels or {}).values():
            for n, step in enumerate(steps or [], 1):
                if isinstance(step, dict):
                    step.setdefault("id", f"s{n}")
    return raw


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in change.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and \
            isinstance(out.get(key), dict) else value
    return out


def apply_site(raw: dict[str, Any], overrides: dict[str, Any],
               add: dict[str, Any]) -> dict[str, Any]:
    """`overrides` by "class.level.id" change fields of a step (`enabled: false` drops it);
    `add` appends steps: {class: {level: [steps]}}."""
    raw = copy.deepcopy(raw)
    classes = raw.setdefault("classes", {})
    for ref, change in overrides.items():
        parts = ref.split(".")
        if len(parts) != 3 or not isinstance(change, dict):
            raise RunbookError(f"vigil_runbook.overrides.{ref}: must be 'class.level.id' "
                               f"mapped to the fields to change")
        klass, level, step_id = parts
        steps = (classes.get(klass) or {}).get(level)
        hit = [i for i, s in enumerate(steps or []) if s.get("id") == step_id]
        if not hit:
            raise RunbookError(f"vigil_runbook.overrides.{ref}: no such step in the runbook")
        steps[hit[0]] = _merge(steps[hit[0]], change)  # type: ignore[index]
    for klass, levels in add.items():
        for level, steps in (levels or {}).items():
            classes.setdefault(klass, {}).setdefault(level, []).extend(copy.deepcopy(steps))
    return raw


def _validate(raw: dict[str, Any], where: str) -> Runbook:
    try:
        runbook = Runbook.model_validate(_with_ids(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise RunbookError(f"{where}: {loc}: {err['msg']}") from None
    missing = set(FaultClass) - set(runbook.classes)
    if missing:
        raise RunbookError(f"{where}: no steps for {', '.join(sorted(missing))}")
    for klass, levels in runbook.classes.items():
        for level in LEVELS:
            ids = [s.id for s in getattr(levels, level)]
            dupes = {i for i in ids if ids.count(i) > 1}
            if dupes:
                raise RunbookError(f"{where}: classes.{klass}.{level}: step id(s) "
                                   f"{', '.join(sorted(dupes))} used twice")
            for s in getattr(levels, level):
                if s.kind == "auto" and s.run is None:
                    raise RunbookError(f"{where}: classes.{klass}.{level}.{s.id}: an auto "
                                       f"step needs `run`")
    return runbook


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise RunbookError(f"{path}: not a mapping")
    return _with_ids(raw)


@lru_cache(maxsize=1)
def load_runbook(path: Path = RUNBOOK) -> Runbook:
    return _validate(_read(path), str(path))


def site_runbook(overrides: dict[str, Any], add: dict[str, Any],
                 path: Path = RUNBOOK) -> Runbook:
    """The runbook as a site runs it; errors name the inventory variable."""
    if not overrides and not add:
        return load_runbook(path)
    return _validate(apply_site(_read(path), overrides, add), f"{path} + vigil_runbook")
