"""Load `runbook.yml`: the plan's steps per fault class and level, validated."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from vigil.domain import FaultClass

RUNBOOK = Path(__file__).with_name("runbook.yml")
LEVELS = ("IV", "III", "II", "I", "recovery")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    clause: str
    kind: Literal["auto", "approval", "manual", "notify"]
    zh: str
    en: str

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class ClassSteps(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    IV: list[Step]
    III: list[Step]
    II: list[Step]
    I: list[Step]  # noqa: E741 (the plan's name)
    recovery: list[Step] = []


class Runbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classes: dict[FaultClass, ClassSteps]

    def steps(self, fault_class: FaultClass, level: str) -> list[Step]:
        steps: list[Step] = getattr(self.classes[fault_class], level)
        return steps


class RunbookError(Exception):
    pass


@lru_cache(maxsize=1)
def load_runbook(path: Path = RUNBOOK) -> Runbook:
    try:
        runbook = Runbook.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"{path}: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise RunbookError(f"{path}: {where}: {err['msg']}") from None
    missing = set(FaultClass) - set(runbook.classes)
    if missing:
        raise RunbookError(f"{path}: no steps for {', '.join(sorted(missing))}")
    return runbook
