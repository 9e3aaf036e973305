"""After converge the broker refuses bank A's publishes, keeps finance's, and loses none."""

import json

API = "curl -fsS -u guest:guest http://127.0.0.1:15672/api"


def perms(host, user):  # type: ignore[no-untyped-def]
    return json.loads(host.check_output(f"{API}/permissions/treasury/{user}"))


def test_paused_parties_cannot_write(host):  # type: ignore[no-untyped-def]
    assert perms(host, "bank-a")["write"] == "^$"
    assert perms(host, "pboc")["write"] == "^$"
    assert perms(host, "finance")["write"] == ".*"


def test_a_paused_party_publish_is_refused_by_the_broker(host):  # type: ignore[no-untyped-def]
    import pika
    import pytest

    creds = pika.PlainCredentials("bank-a", "lab-only-bank-a")
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, "treasury",
                                                             creds))
    channel = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
        channel.basic_publish("", "receipts.to-finance", b"receipt")
        channel.queue_declare("receipts.to-finance", passive=True)  # forces a round trip
    conn.close()
