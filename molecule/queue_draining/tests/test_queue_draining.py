"""The 50 jammed vouchers went to the spool and came back once, in order, with their
properties and headers; the queue is empty and the spool is marked replayed."""

import json
import os
import time

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]


def received(host):  # type: ignore[no-untyped-def]
    text = host.file(f"{EPHEMERAL}/received.jsonl").content_string
    return [json.loads(line) for line in text.splitlines()]


def test_every_voucher_came_back_once_in_order_with_its_headers(host):  # type: ignore[no-untyped-def]
    for _ in range(30):  # the consumer acknowledges asynchronously
        if len(received(host)) >= 50:
            break
        time.sleep(0.5)
    got = received(host)
    assert [m["message_id"] for m in got] == [f"V{seq:05d}" for seq in range(50)]
    assert got[7]["headers"] == {"voucher-no": "V00007", "seq": 7, "party": "finance"}
    assert got[7]["body"] == "<voucher no='V00007'/>"
    assert {(m["content_type"], m["delivery_mode"]) for m in got} == {("application/xml", 2)}


def test_queue_is_empty_and_spool_marked_replayed(host):  # type: ignore[no-untyped-def]
    import pika

    # The broker's own count (the management API's figures lag by seconds).
    conn = pika.BlockingConnection(pika.URLParameters(
        "amqp://guest:guest@127.0.0.1:5672/treasury"))
    depth = conn.channel().queue_declare("molecule.jammed", passive=True).method.message_count
    conn.close()
    assert depth == 0
    spooled = host.check_output(f"ls {EPHEMERAL}/spool/molecule.jammed").split()
    assert len(spooled) == 1 and spooled[0].endswith(".replayed")
    lines = host.file(f"{EPHEMERAL}/spool/molecule.jammed/{spooled[0]}").content_string
    assert json.loads(lines.splitlines()[-1]) == {"end": 50}
