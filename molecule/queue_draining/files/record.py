"""A consumer that writes each message it gets, in order, then acknowledges it."""

import json
import sys

import pika

url, queue, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
conn = pika.BlockingConnection(pika.URLParameters(url))
channel = conn.channel()
out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life


def got(ch, method, props, body):  # type: ignore[no-untyped-def]
    out.write(json.dumps({"body": body.decode(), "message_id": props.message_id,
                          "headers": props.headers, "content_type": props.content_type,
                          "delivery_mode": props.delivery_mode}) + "\n")
    out.flush()
    ch.basic_ack(method.delivery_tag)


channel.basic_consume(queue, got)
channel.start_consuming()
