"""Promotion on the self-fence's word (no BMC): only when neither the monitoring server
nor the standby's self-fence, asked over TCP on loopback, has heard the primary for the
self-fence's limit and margin."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.receivers import free_port
from vigil.model import Host, SelfFence
from vigil.remediations import self_fence

FENCE = SelfFence(limit_s=2, margin_s=2)
PRIMARY = Host(name="db-a", address="127.0.0.1", party=None, groups=(), pg_port=15432,
               self_fence=FENCE)


class StandbySays:
    """A standby's self-fence status port, saying what the test sets."""

    def __init__(self) -> None:
        self.silent_s: float | Any = 0.0
        self.asked = 0
        says = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                says.asked += 1
                peers = [{"name": "db-a", "address": "127.0.0.1", "port": 15432,
                          "silent_s": says.silent_s() if callable(says.silent_s)
                          else says.silent_s}]
                self.wfile.write(json.dumps({"primary": False, "peers": peers}).encode() + b"\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def standby(self) -> Host:
        return Host(name="db-b", address="127.0.0.1", party=None, groups=(), pg_port=15433,
                    self_fence=SelfFence(limit_s=2, margin_s=2, port=self.port))


@pytest.fixture
def says() -> Iterator[StandbySays]:
    s = StandbySays()
    yield s
    s.server.shutdown()
    s.server.server_close()


def test_both_silent_past_limit_and_margin_is_taken_as_self_fenced(says: StandbySays) -> None:
    says.silent_s = 9.0
    got = self_fence.outlasted(PRIMARY, says.standby(), time.monotonic() - 9, lambda: "")
    assert got.ok and "has stopped itself" in got.why


def test_it_waits_until_the_standby_too_has_not_heard_the_primary_long_enough(
        says: StandbySays) -> None:
    began = time.monotonic()
    says.silent_s = lambda: 2.5 + time.monotonic() - began  # silent, not yet 4 s
    got = self_fence.outlasted(PRIMARY, says.standby(), began - 9, lambda: "")
    waited = time.monotonic() - began
    assert got.ok and 1.4 <= waited < 3.5 and says.asked > 2


def test_a_standby_that_still_hears_the_primary_stops_the_promotion_at_once(
        says: StandbySays) -> None:
    says.silent_s = 0.4
    began = time.monotonic()
    got = self_fence.outlasted(PRIMARY, says.standby(), began - 9, lambda: "")
    assert not got.ok and "db-b hears db-a" in got.why
    assert time.monotonic() - began < 1


def test_without_the_standby_s_word_there_is_no_promotion() -> None:
    standby = Host(name="db-b", address="127.0.0.1", party=None, groups=(), pg_port=15433,
                   self_fence=SelfFence(port=free_port()))  # nothing listens there
    got = self_fence.outlasted(PRIMARY, standby, time.monotonic() - 9, lambda: "")
    assert not got.ok and got.why.startswith("cannot ask db-b's self-fence")


def test_the_monitoring_server_s_own_silence_must_last_as_long(says: StandbySays) -> None:
    says.silent_s = 30.0  # the standby lost it long ago; we heard it a moment ago
    began = time.monotonic()
    got = self_fence.outlasted(PRIMARY, says.standby(), began - 1, lambda: "")
    assert got.ok and time.monotonic() - began >= 2.9


def test_a_primary_that_answers_while_waited_out_is_not_failed_over(
        says: StandbySays) -> None:
    says.silent_s = 3.0
    answers = iter(["", "", "refuses connections"])
    got = self_fence.outlasted(PRIMARY, says.standby(), time.monotonic(), lambda: next(answers))
    assert not got.ok and got.why.startswith("db-a refuses connections while waiting")
