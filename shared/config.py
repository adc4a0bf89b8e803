"""The one settings class: environment variables with the DVC_ prefix, secrets without defaults."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changethis", "changeme", "password", "secret", ""}


class KafkaSettings(BaseSettings):
    """How a process reaches and authenticates to Kafka (the part of `Settings` a Kafka-only CLI needs).

    Each process authenticates as its own principal (`dvc kafka setup` creates them and their ACLs);
    the password has no default, and a client built without it is refused by the broker.
    """

    model_config = SettingsConfigDict(
        env_prefix="DVC_", env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    KAFKA_BOOTSTRAP_SERVERS: str = "127.0.0.1:59092"
    KAFKA_USERNAME: str | None = None
    KAFKA_PASSWORD: SecretStr | None = None
    # SASL_SSL on the TLS listener (upstream systems, other hosts); SASL_PLAINTEXT on the internal one
    KAFKA_SECURITY_PROTOCOL: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    # SCRAM-SHA-512 for every principal; PLAIN only for the static super user `admin` (dvc kafka setup)
    KAFKA_SASL_MECHANISM: Literal["SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    KAFKA_CA_FILE: Path | None = None  # CA of the broker's TLS certificate (SASL_SSL); none: system CAs


RECOMPUTE_WORKERS = 2


class Settings(KafkaSettings):
    """Settings common to every process; DATABASE_URL is the DSN of the process's own database role."""

    DATABASE_URL: SecretStr
    TOPIC_PREFIX: str = ""
    HTTP_HOST: str = "127.0.0.1"
    HTTP_PORT: int = 8000
    LOG_LEVEL: str = "INFO"
    REGISTRY_REFRESH_SECONDS: float = 5.0
    GRAFANA_URL: str | None = None  # a Grafana with the boards: mails link to it, annotations go to it
    # Periods whose last day is older than this are not alerted on (alerts) nor published to alerts
    # (metrics), so a backfill of old data computes counts without flooding unit heads.
    ALERTS_LOOKBACK_DAYS: int = 45
    # True: the KPI reads of the metrics API (/api/v1/kpis, /api/v1/units) need no token (a trusted
    # network only). Every other route needs a Bearer token (`dvc tokens create`).
    API_READ_PUBLIC: bool = False
    # The web pages (served by metrics): where people reach them, and the key of the signed unit-page
    # links in messages (shared by alerts, which signs, and metrics, which checks; none: no such links).
    PAGES_URL: str = "http://127.0.0.1:8002"
    PAGES_SIGNING_KEY: SecretStr | None = None
    PAGES_LINK_DAYS: float = 30.0
    ALERTS_URL: str = "http://127.0.0.1:8003"  # where people reach the alerts service (acknowledge links)
    # "Sắp đến hạn" (alerts' digests and the unit pages of metrics): open cases due within this many
    # working days, each with the median processing days of the unit x procedure over the lookback
    ALERTS_DUE_SOON_WORKING_DAYS: int = 3
    ALERTS_PROCESSING_LOOKBACK_DAYS: int = 90
    # Consumer lag and the completeness watermark (shared/lag.py, shared/watermark.py): how often each
    # consumer asks the broker for its lag; the grace subtracted from the broker timestamp of a waiting
    # record for upstream delivery; how far the data may lag before no notification is sent.
    LAG_POLL_SECONDS: float = 5.0
    WATERMARK_GRACE_SECONDS: float = 60.0
    WATERMARK_HOLD_SECONDS: float = 300.0
    # `dvc metrics recompute|audit`: connections folding the raw event store at once, the case fold
    # split in as many parts (the database server's cores the recomputation may take).
    RECOMPUTE_WORKERS: int = Field(default=RECOMPUTE_WORKERS, ge=1, le=32)

    @field_validator("DATABASE_URL")
    @classmethod
    def reject_placeholder_secret(cls, value: SecretStr) -> SecretStr:
        """Refuse DSNs whose password is a well-known placeholder."""
        password = value.get_secret_value().partition("@")[0].rpartition(":")[2]
        if password.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("DATABASE_URL has an empty or placeholder password / mật khẩu không hợp lệ")
        return value

    @field_validator("PAGES_SIGNING_KEY")
    @classmethod
    def reject_placeholder_page_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse a placeholder or short page-link key."""
        if value is not None:
            secret = value.get_secret_value()
            if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 16:
                raise ValueError("DVC_PAGES_SIGNING_KEY must be at least 16 characters / khoá không hợp lệ")
        return value


class MigrationSettings(Settings):
    """Settings of `dvc db migrate`: DATABASE_URL is the admin DSN; each service role gets its password."""

    INGEST_DB_PASSWORD: SecretStr
    METRICS_DB_PASSWORD: SecretStr
    ALERTS_DB_PASSWORD: SecretStr
    READER_DB_PASSWORD: SecretStr


class AlertsSettings(Settings):
    """Settings of the alerts service (`services/alerts/`): channels, signing secrets and alerting knobs."""

    ALERTS_SIGNING_KEY: SecretStr  # signs the acknowledgement links of messages
    WEBHOOK_SECRET: SecretStr  # signs outgoing webhook calls (HMAC-SHA256)
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = 25
    SMTP_FROM: str = "giamsat-dvc@localhost"
    # starttls: STARTTLS is required (no mail leaves in clear); tls: implicit TLS (port 465);
    # off: plain SMTP, only when set explicitly (a local sink, a relay on the same host)
    SMTP_TLS: Literal["starttls", "tls", "off"] = "starttls"
    SMTP_USERNAME: str | None = None  # SMTP AUTH, optional; needs SMTP_PASSWORD and TLS
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_CA_FILE: str | None = None  # PEM bundle to verify the relay's certificate (default: system CAs)
    SMTP_MESSAGE_ID_DOMAIN: str | None = None  # right side of Message-IDs (default: SMTP_FROM's domain)
    PUBLIC_URL: str = "http://127.0.0.1:8003"
    GRAFANA_TOKEN: SecretStr | None = None  # no token: no Grafana annotations
    ALERTS_EVALUATION_SECONDS: float = 60.0
    ALERTS_CONFIRM_SECONDS: float = 600.0  # a pending breach also enters after persisting this long
    ALERTS_RESOLVE_SECONDS: float = 1800.0  # a recovery also resolves after persisting this long
    ALERTS_ESCALATION_SECONDS: float = 14400.0  # unacknowledged this long: the parent unit's head is told
    ALERTS_ACK_LINK_DAYS: float = 7.0  # an acknowledgement link in a message works this long
    ALERTS_MIN_SAMPLES: int = 20
    ALERTS_RECOVERY_MARGIN: float = 0.005
    ALERTS_OFFICE_HOURS: str = "07:30-11:30,13:30-17:00"  # local time, working days only (digests)
    ALERTS_RETRY_BASE_SECONDS: float = 30.0  # delay before retry n: base * 2**(n-1), capped, jittered
    ALERTS_RETRY_MAX_DELAY_SECONDS: float = 900.0  # the cap of that delay
    ALERTS_RETRY_HORIZON_SECONDS: float = 259200.0  # 72 h after its first attempt a notification is failed
    ALERTS_SEND_POLL_SECONDS: float = 1.0
    # e-mail alert notices are grouped per recipient (like Alertmanager's group_wait / group_interval):
    # the first message waits this long after the first change, the next ones at least the interval
    ALERTS_GROUP_WAIT_SECONDS: float = 30.0
    ALERTS_GROUP_INTERVAL_SECONDS: float = 300.0
    ALERTS_CHANNEL_TIMEOUT_SECONDS: float = 10.0

    @field_validator("ALERTS_SIGNING_KEY", "WEBHOOK_SECRET")
    @classmethod
    def reject_placeholder_key(cls, value: SecretStr) -> SecretStr:
        """Refuse empty, placeholder or short signing secrets."""
        secret = value.get_secret_value()
        if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 16:
            raise ValueError(
                "a signing secret must be at least 16 characters, not a placeholder / khoá không hợp lệ"
            )
        return value

    @model_validator(mode="after")
    def check_smtp_login(self) -> Self:
        """Refuse half an SMTP login, and a password sent over a connection without TLS."""
        if (self.SMTP_USERNAME is None) != (self.SMTP_PASSWORD is None):
            raise ValueError(
                "SMTP_USERNAME và SMTP_PASSWORD phải đặt cùng nhau / set both SMTP_USERNAME and SMTP_PASSWORD"
            )
        if self.SMTP_PASSWORD is not None and self.SMTP_TLS == "off":
            raise ValueError(
                "không gửi mật khẩu SMTP khi DVC_SMTP_TLS=off / refusing SMTP AUTH without TLS (DVC_SMTP_TLS=off)"
            )
        return self
