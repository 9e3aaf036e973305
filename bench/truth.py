"""What every benchmark shares: its results checked against the ground truth, and the
whole process tree's peak memory.

A fast wrong answer is no result: each benchmark states what it must find (the
generator's discrepancies, the voucher count and totals, every target answering) with
`Truth.expect`, and `Truth.done` exits 1 naming each mismatch. `--inject-mismatch` shifts
one expectation, to show that the check bites (`make bench-smoke` runs it that way too).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from typing import Any

import psutil


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inject-mismatch", action="store_true",
                        help="Shift one expected value: the run must then exit 1.")


class Truth:
    def __init__(self, name: str, inject: bool = False) -> None:
        self.name, self.inject = name, inject
        self.checked = 0
        self.wrong: list[str] = []

    def expect(self, what: str, expected: Any, actual: Any) -> None:
        if self.inject and self.checked == 0:  # the first expectation, off by one
            expected = expected + 1 if isinstance(expected, int) else f"{expected}?"
        self.checked += 1
        if expected != actual:
            self.wrong.append(f"{what}: expected {expected!r}, got {actual!r}")

    def done(self) -> None:
        if not self.checked:
            self.wrong.append("nothing was checked against the ground truth")
        for line in self.wrong:
            print(f"{self.name}: WRONG {line}", file=sys.stderr)
        if self.wrong:
            sys.exit(1)
        print(f"{self.name}: {self.checked} results checked against the ground truth: ok")


class TreePeak:
    """The peak resident memory of a process and all its descendants together, sampled
    every 20 ms while it runs (a child's own peak misses its workers)."""

    def __init__(self, pid: int) -> None:
        self.peak_bytes = 0
        self._root = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just ended
                    total += p.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, total)
            time.sleep(0.02)

    def stop(self) -> float:
        """The peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_bytes / 2**20
