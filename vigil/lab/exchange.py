"""The parties' voucher libraries, as far as the MQ sees them: a consumer on each
exchange queue that acknowledges what arrives. Run by `vigil lab up` as its own process;
stopping it leaves the queues without consumers, as a dead voucher library would.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pika
import pika.exceptions

VHOST = "treasury"
QUEUES = ("vouchers.to-pboc", "vouchers.to-bank-a", "receipts.to-finance")
PARTY_USERS = {"finance": "finance", "pboc": "pboc", "bank-a": "bank-a"}


def password(user: str) -> str:
    return f"lab-only-{user}"


def declare(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
    for queue in QUEUES:
        channel.queue_declare(queue, durable=True)


def main(received: str | None = None) -> None:
    """Consume every queue; with `received`, note each message (queue, message id, body)
    in that JSON-lines file, so drills can count what arrived and in which order."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log = Path(received).open("a", encoding="utf-8") if received else None  # noqa: SIM115

    def got(ch, method, props, body):
        if log:
            log.write(json.dumps({"queue": method.routing_key, "id": props.message_id,
                                  "body": body.decode(errors="replace")}) + "\n")
            log.flush()
        ch.basic_ack(method.delivery_tag)

    params = pika.ConnectionParameters(
        "127.0.0.1", 5672, VHOST, pika.PlainCredentials("guest", "guest"), heartbeat=30)
    while True:
        try:
            conn = pika.BlockingConnection(params)
            channel = conn.channel()
            declare(channel)
            channel.basic_qos(prefetch_count=50)
            for queue in QUEUES:
                channel.basic_consume(queue, got)
            channel.start_consuming()
        except pika.exceptions.AMQPError:
            time.sleep(1)  # the broker restarts in some drills: come back with it


