"""Kafka helpers of the fault tests: messages with arbitrary headers (binary, empty, null, repeated keys)."""

import asyncio

from aiokafka import AIOKafkaProducer

from tests.conftest import kafka_security

Headers = list[tuple[str, bytes | None]]
Message = tuple[bytes | None, bytes, Headers]

BINARY = b"\xff\xfe\x00\x01"
ODD_HEADERS: list[Headers] = [
    [("trace", BINARY)],
    [("x-empty", b"")],
    [("x-null", None)],
    [("trace", BINARY), ("x-empty", b""), ("x-null", None), ("trace", b"second value, same key")],
]


async def produce_with_headers(bootstrap: str, topic: str, messages: list[Message]) -> None:
    """Send (key, value, headers) messages and wait until the broker has them all."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20, **kafka_security(bootstrap)
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
