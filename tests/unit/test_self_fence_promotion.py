"""Promotion on the self-fence's word (no BMC): only when neither the monitoring server
nor the standby's self-fence, asked over TCP on loopback, has heard the primary's host for
the self-fence's limit and margin."""

from __future__ import annotations

import hashlib
import hmac
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

KEY = "the pair's shared key, test only"
PRIMARY = Host(name="db-a", address="127.0.0.1", party=None, groups=(), pg_port=15432,
               self_fence=SelfFence(limit_s=2, margin_s=2, port=15440, key=KEY))


def silent(_host: Host) -> bool:
    return False


class StandbySays:
    """A standby's self-fence status port, saying what the test sets, signed with `key`
    over the asker's nonce as the self-fence signs it (`signed=False`: unsigned)."""

    def __init__(self) -> None:
        self.silent_s: float | Any = 0.0
        self.asked = 0
        self.key, self.signed = KEY, True
        says = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                says.asked += 1
                nonce = self.rfile.readline().strip()
                peers = [{"name": "db-a", "address": "127.0.0.1", "port": 15440,
                          "silent_s": says.silent_s() if callable(says.silent_s)
                          else says.silent_s}]
                line = json.dumps({"primary": False, "peers": peers}).encode()
                self.wfile.write(line + b"\n")
                if says.signed:
                    self.wfile.write(hmac.new(says.key.encode(), nonce + b"\n" + line,
                                              hashlib.sha256).hexdigest().encode() + b"\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def standby(self, key: str | None = KEY) -> Host:
        return Host(name="db-b", address="127.0.0.1", party=None, groups=(), pg_port=15433,
                    self_fence=SelfFence(limit_s=2, margin_s=2, port=self.port, key=key))


@pytest.fixture
def says() -> Iterator[StandbySays]:
    s = StandbySays()
    yield s
    s.server.shutdown()
    s.server.server_close()


def test_both_silent_past_limit_and_margin_is_taken_as_self_fenced(says: StandbySays) -> None:
    began = time.monotonic()
    says.silent_s = lambda: 9.0 + time.monotonic() - began
    got = self_fence.outlasted(PRIMARY, says.standby(), silent)
    waited = time.monotonic() - began
    # the monitoring server counts its own silence from now, whatever it saw before
    assert got.ok and "has stopped itself" in got.why and 3.9 <= waited < 5.5


def test_it_waits_until_the_standby_too_has_not_heard_the_primary_long_enough(
        says: StandbySays) -> None:
    began = time.monotonic()
    says.silent_s = lambda: 2.5 + time.monotonic() - began  # silent, 4 s from 5.5 s on
    got = self_fence.outlasted(PRIMARY, says.standby(), silent)
    assert got.ok and 1.4 <= time.monotonic() - began < 5.5 and says.asked > 2


def test_a_standby_that_still_hears_the_primary_stops_the_promotion_at_once(
        says: StandbySays) -> None:
    says.silent_s = 0.4
    began = time.monotonic()
    got = self_fence.outlasted(PRIMARY, says.standby(), silent)
    assert not got.ok and "db-b hears db-a" in got.why
    assert time.monotonic() - began < 1


@pytest.mark.parametrize("answer", ["forged", "unsigned", "no key here"])
def test_a_word_not_signed_with_the_pair_s_key_stops_the_promotion(
        says: StandbySays, answer: str) -> None:
    """Someone answering for the standby (or a standby without the key) cannot get it
    promoted by saying the primary is silent."""
    says.silent_s = 30.0
    says.key = "someone else's key, 16 bytes+" if answer == "forged" else KEY
    says.signed = answer != "unsigned"
    standby = says.standby(key=None if answer == "no key here" else KEY)
    got = self_fence.outlasted(PRIMARY, standby, silent)
    assert not got.ok and got.why.startswith("cannot ask db-b's self-fence"), got.why
    assert ("no vigil_self_fence.key" if answer == "no key here" else "not signed") in got.why


def test_without_the_standby_s_word_there_is_no_promotion() -> None:
    standby = Host(name="db-b", address="127.0.0.1", party=None, groups=(), pg_port=15433,
                   self_fence=SelfFence(port=free_port(), key=KEY))  # nothing listens there
    got = self_fence.outlasted(PRIMARY, standby, silent)
    assert not got.ok and got.why.startswith("cannot ask db-b's self-fence")


def test_a_primary_whose_host_answers_is_not_failed_over(says: StandbySays) -> None:
    """Its database may be silent (hung, its backlog full), but its host answers: its
    self-fence hears us and will not stop it."""
    says.silent_s = 30.0
    looks = iter([False, False, True])
    got = self_fence.outlasted(PRIMARY, says.standby(), lambda _h: next(looks))
    assert not got.ok and got.why.startswith("db-a's host answers the monitoring server")


def test_the_host_is_looked_at_on_its_self_fence_port_and_a_refusal_answers() -> None:
    closed = Host(name="db-a", address="127.0.0.1", party=None, groups=(),
                  self_fence=SelfFence(port=free_port()))
    assert self_fence.host_answers(closed)  # refused: the host's kernel spoke
