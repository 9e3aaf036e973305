"""Lab tests run against the real components `vigil lab up` starts.

When the lab is down they skip with a reason, except under VIGIL_REQUIRE_LAB=1 (set by
`make test` and CI), where a missing lab is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.lab.watcher import Watch
from vigil import lab


@pytest.fixture(scope="session")
def lab_up() -> None:
    down = [h for h in lab.status() if not h.ok]
    if down:
        names = ", ".join(f"{h.name} ({h.detail})" for h in down)
        if os.environ.get("VIGIL_REQUIRE_LAB") == "1":
            pytest.fail(f"lab components down: {names}")
        pytest.skip(f"lab not up (vigil lab up): {names}")


@pytest.fixture
def restore_lab(lab_up: None):  # type: ignore[no-untyped-def]
    """Whatever a fault-injection test breaks, bring the lab back after it."""
    yield
    lab.up(progress=lambda _m: None)


@pytest.fixture
def watches() -> Iterator[Callable[..., Watch]]:
    """`vigil watch` daemons for a test; whatever happens in it, none outlives it (a
    leftover daemon would act on the next test's faults)."""
    made: list[Watch] = []

    def make(*args: Any, **kwargs: Any) -> Watch:
        made.append(Watch(*args, **kwargs))
        return made[-1]

    yield make
    for w in made:
        if w.proc and w.proc.poll() is None:
            w.kill()


@pytest.fixture
def pg_store_url(lab_up: None) -> Iterator[str]:
    """A store of its own: a fresh database on the lab's PostgreSQL primary."""
    name = f"vigil_test_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-p", "5433", "-U", "postgres", "-AtX", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    yield f"postgresql+psycopg://postgres@127.0.0.1:5433/{name}"
    subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)
