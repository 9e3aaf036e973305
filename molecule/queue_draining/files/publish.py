"""Jam a queue: publish N vouchers with headers and properties to a queue nobody consumes."""

import sys

import pika

url, queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = pika.BlockingConnection(pika.URLParameters(url))
channel = conn.channel()
channel.queue_declare(queue, durable=True)
channel.queue_purge(queue)
channel.confirm_delivery()
for seq in range(count):
    props = pika.BasicProperties(
        content_type="application/xml", delivery_mode=2, message_id=f"V{seq:05d}",
        headers={"voucher-no": f"V{seq:05d}", "seq": seq, "party": "finance"})
    channel.basic_publish("", queue, f"<voucher no='V{seq:05d}'/>".encode(), props)
conn.close()
