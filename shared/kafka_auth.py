"""The one place that turns `KafkaSettings` into client security options (aiokafka and FastStream)."""

from ssl import SSLContext
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram512

from shared.config import PLACEHOLDER_SECRETS, KafkaSettings


class KafkaCredentialsMissing(ValueError):
    """The process has no Kafka principal configured."""


def credentials(settings: KafkaSettings) -> tuple[str, str]:
    """Return (username, password), or raise a clear error when either is missing or a placeholder."""
    password = settings.KAFKA_PASSWORD.get_secret_value() if settings.KAFKA_PASSWORD else ""
    if not settings.KAFKA_USERNAME or password.lower() in PLACEHOLDER_SECRETS:
        raise KafkaCredentialsMissing(
            "Thiếu tài khoản Kafka / Kafka credentials missing: set DVC_KAFKA_USERNAME and "
            "DVC_KAFKA_PASSWORD (the principal's password in secrets.env or .env)"
        )
    return settings.KAFKA_USERNAME, password


def ssl_context(settings: KafkaSettings) -> SSLContext | None:
    """Return the TLS context of a SASL_SSL connection (verifying the broker against KAFKA_CA_FILE)."""
    if settings.KAFKA_SECURITY_PROTOCOL != "SASL_SSL":
        return None
    cafile = str(settings.KAFKA_CA_FILE) if settings.KAFKA_CA_FILE else None
    return create_ssl_context(cafile=cafile)  # type: ignore[no-any-return]


def aiokafka_security(settings: KafkaSettings) -> dict[str, Any]:
    """Return the keyword arguments of an aiokafka producer, consumer or admin client."""
    username, password = credentials(settings)
    return {
        "security_protocol": settings.KAFKA_SECURITY_PROTOCOL,
        "sasl_mechanism": settings.KAFKA_SASL_MECHANISM,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
        "ssl_context": ssl_context(settings),
    }


def broker_security(settings: KafkaSettings) -> BaseSecurity:
    """Return the `security=` of a FastStream KafkaBroker (same options as `aiokafka_security`)."""
    username, password = credentials(settings)
    context = ssl_context(settings)
    use_ssl = settings.KAFKA_SECURITY_PROTOCOL == "SASL_SSL"
    if settings.KAFKA_SASL_MECHANISM == "PLAIN":
        return SASLPlaintext(username, password, ssl_context=context, use_ssl=use_ssl)
    return SASLScram512(username, password, ssl_context=context, use_ssl=use_ssl)
