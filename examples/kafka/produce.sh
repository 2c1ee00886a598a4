#!/usr/bin/env bash
# Produce three plain click records (keyed by user) to the "clicks" topic.
set -euo pipefail
BOOTSTRAP="${EVENTING_TEST_KAFKA_BOOTSTRAP:-127.0.0.1:9192}"
exec "${PYTHON:-.venv/bin/python}" - "$BOOTSTRAP" <<'PY'
import asyncio, sys
from aiokafka import AIOKafkaProducer

async def main(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for user, page in [("u1", "/"), ("u2", "/cart"), ("u1", "/checkout")]:
            await producer.send_and_wait("clicks", f'{{"page": "{page}"}}'.encode(),
                                         key=user.encode(), headers=[("content-type", b"application/json")])
    finally:
        await producer.stop()
    print("produced 3 records")

asyncio.run(main(sys.argv[1]))
PY
