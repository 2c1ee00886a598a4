#!/usr/bin/env bash
# Publish one CloudEvent (binary mode, ce-* headers) and one plain message to the
# "orders" exchange of examples/rabbitmq/rabbitmq.yaml, with the project's venv.
set -euo pipefail
URL="${EVENTING_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5682/}"
exec "${PYTHON:-.venv/bin/python}" - "$URL" <<'PY'
import asyncio, sys
import aio_pika

async def main(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange("orders", aio_pika.ExchangeType.TOPIC, durable=True)
        await exchange.publish(aio_pika.Message(
            b'{"order": 1001, "amount": 42.5}', content_type="application/json",
            headers={"ce-specversion": "1.0", "ce-id": "order-1001-paid",
                     "ce-type": "com.example.order.paid", "ce-source": "/shop/checkout"}),
            routing_key="orders.paid")
        await exchange.publish(aio_pika.Message(b"legacy order 1002", message_id="order-1002"),
                               routing_key="orders.legacy")
    print("published 2 messages")

asyncio.run(main(sys.argv[1]))
PY
