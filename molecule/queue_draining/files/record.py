"""A consumer that writes each message it gets, in order, then acknowledges it. It keeps
trying to connect for a minute (a broker busy right after the spool step refuses or
drops a first connection), and says why it gave up in OUT.err."""

import json
import sys
import time
import traceback

import pika

url, queue, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life


def got(ch, method, props, body):  # type: ignore[no-untyped-def]
    out.write(json.dumps({"body": body.decode(), "message_id": props.message_id,
                          "headers": props.headers, "content_type": props.content_type,
                          "delivery_mode": props.delivery_mode}) + "\n")
    out.flush()
    ch.basic_ack(method.delivery_tag)


deadline = time.monotonic() + 60
while True:
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        channel = conn.channel()
        channel.basic_consume(queue, got)
        channel.start_consuming()
        break
    except pika.exceptions.AMQPError:
        if time.monotonic() > deadline:
            with open(out_path + ".err", "a", encoding="utf-8") as err:
                err.write(traceback.format_exc())
            raise
        time.sleep(1)
