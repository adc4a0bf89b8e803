"""Kafka authenticates every client (SASL/SCRAM-SHA-512, TLS outside) and each principal may only do
what `cli.kafka.PRINCIPALS` says: tried against the real broker started by scripts/infra.sh."""

from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from shared import topics
from shared.config import KafkaSettings
from shared.kafka_auth import KafkaCredentialsMissing, aiokafka_security
from tests.conftest import infra_setting, kafka_settings, read_topic

pytestmark = pytest.mark.integration

TIMEOUTS: dict[str, Any] = {"request_timeout_ms": 5000, "metadata_max_age_ms": 1000}


def external(name: str) -> KafkaSettings:
    """A principal's settings on the TLS listener, verifying the broker against the infra's CA."""
    return kafka_settings(infra_setting("DVC_KAFKA_EXTERNAL_BOOTSTRAP_SERVERS"), name).model_copy(
        update={
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_CA_FILE": Path(infra_setting("DVC_KAFKA_CA_FILE")),
        }
    )


async def send_one(settings: KafkaSettings, topic: str, value: bytes) -> None:
    """Send one message with an idempotent producer authenticated by `settings`."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        enable_idempotence=True,
        **TIMEOUTS,
        **aiokafka_security(settings),
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"unit")
    finally:
        await producer.stop()


async def test_a_client_without_credentials_is_refused(kafka_bootstrap: str, topic_prefix: str) -> None:
    for bootstrap in (kafka_bootstrap, infra_setting("DVC_KAFKA_EXTERNAL_BOOTSTRAP_SERVERS")):
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **TIMEOUTS)
        with pytest.raises(KafkaConnectionError):
            await producer.start()
        await producer.stop()
    with pytest.raises(KafkaCredentialsMissing):
        aiokafka_security(KafkaSettings(KAFKA_USERNAME=None, KAFKA_PASSWORD=None))


async def test_a_wrong_password_is_refused(kafka_bootstrap: str, topic_prefix: str) -> None:
    wrong = kafka_settings(kafka_bootstrap, "one-stop").model_copy(
        update={"KAFKA_PASSWORD": SecretStr("0" * 48)}
    )
    with pytest.raises(KafkaError):
        await send_one(wrong, topic_prefix + topics.CASE_EVENTS, b"{}")
    assert await read_topic(kafka_bootstrap, topic_prefix + topics.CASE_EVENTS, expect=1, timeout=2) == []


async def test_the_one_stop_system_writes_case_events_over_tls(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    await send_one(external("one-stop"), topic_prefix + topics.CASE_EVENTS, b'{"over": "tls"}')
    records = await read_topic(kafka_bootstrap, topic_prefix + topics.CASE_EVENTS, expect=1)
    assert [r.value for r in records] == [b'{"over": "tls"}']


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        ("one-stop", topics.KPI_UPDATES),  # a forged KPI update
        ("one-stop", topics.DOCUMENT_EVENTS),  # another system's topic
        ("documents", topics.CASE_EVENTS),
        ("simulator", topics.ALERTS),
        ("ingest", topics.KPI_UPDATES),  # each service writes only its own outputs
        ("metrics", topics.ALERTS),
        ("alerts", topics.CASE_EVENTS),
    ],
)
async def test_a_principal_cannot_write_outside_its_topics(
    kafka_bootstrap: str, topic_prefix: str, principal: str, topic: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await send_one(kafka_settings(kafka_bootstrap, principal), topic_prefix + topic, b"{}")
    assert await read_topic(kafka_bootstrap, topic_prefix + topic, expect=1, timeout=2) == []


async def test_the_one_stop_system_cannot_read_and_services_read_only_their_inputs(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    await send_one(kafka_settings(kafka_bootstrap, "metrics"), topic_prefix + topics.KPI_UPDATES, b"{}")
    for principal, topic, group in (
        ("one-stop", topics.CASE_EVENTS, "dvc-ingest"),
        ("ingest", topics.KPI_UPDATES, "dvc-ingest"),  # its own group, but not its topic
        ("alerts", topics.KPI_UPDATES, "dvc-metrics"),  # its topic, but another service's group
    ):
        consumer = AIOKafkaConsumer(
            topic_prefix + topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=topic_prefix + group,
            auto_offset_reset="earliest",
            **TIMEOUTS,
            **aiokafka_security(kafka_settings(kafka_bootstrap, principal)),
        )
        with pytest.raises((TopicAuthorizationFailedError, GroupAuthorizationFailedError)):
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)
        await consumer.stop()
